package chdb

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

// The pinned engine. scripts/fetch-chdb.sh carries the same constants.
const (
	// Version is the chDB release the code is written and tested against.
	Version = "26.5.3"
	// Package is the npm package that carries libchdb.so.
	Package = "@chdb/lib-linux-x64-gnu@" + Version
	// TarballSHA256 is the checksum of `npm pack` output for Package.
	TarballSHA256 = "b874e449710950da3abd7e20376f7bb3387d9e03adcc7082f022be18dfdf316a"

	tarballName = "chdb-lib-linux-x64-gnu-" + Version + ".tgz"
	libName     = "libchdb.so"
	// EnvLib names a library to use instead of the cache.
	EnvLib = "COCKPIT_CHDB_LIB"
)

// ErrNotInstalled is returned by Locate when the library is not in place.
var ErrNotInstalled = errors.New("chdb: libchdb.so is not installed (run scripts/fetch-chdb.sh, or set " + EnvLib + ")")

// cacheRoot is $XDG_CACHE_HOME/cockpit/chdb or $HOME/.cache/cockpit/chdb.
func cacheRoot() (string, error) {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cannot find the cache directory: %w", err)
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "cockpit", "chdb"), nil
}

// CachePath is where Ensure installs the library.
func CachePath() (string, error) {
	root, err := cacheRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, Version, libName), nil
}

// Locate returns the library named by COCKPIT_CHDB_LIB, or the cached copy.
// It never downloads; the error wraps ErrNotInstalled when nothing is there.
func Locate() (string, error) {
	if p := os.Getenv(EnvLib); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("cannot use %s=%s: %w", EnvLib, p, err)
		}
		return p, nil
	}
	p, err := CachePath()
	if err != nil {
		return "", err
	}
	if st, err := os.Stat(p); err == nil && st.Size() > 0 {
		return p, nil
	}
	return "", fmt.Errorf("%w: looked for %s", ErrNotInstalled, p)
}

// Ensure returns the library path like Locate, fetching the pinned release
// into the cache first when it is missing: `npm pack` (166 MB) into a
// temporary directory, sha256 check, extraction of libchdb.so only (559 MB)
// and an atomic rename into place. A tarball with the right checksum already
// in the cache root is used instead of downloading. Concurrent callers, in
// this process or others, wait for one fetch.
func Ensure(ctx context.Context, logger *slog.Logger) (string, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p, err := Locate()
	if err == nil || !errors.Is(err, ErrNotInstalled) {
		return p, err
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return "", fmt.Errorf("cannot fetch the engine: %s only exists for linux/amd64; set %s", Package, EnvLib)
	}
	dest, err := CachePath()
	if err != nil {
		return "", err
	}
	root := filepath.Dir(filepath.Dir(dest))
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return "", fmt.Errorf("cannot create the cache directory: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(root, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	// Someone else may have finished while this one waited for the lock.
	if p, err := Locate(); err == nil {
		return p, nil
	}

	tmp, err := os.MkdirTemp(root, ".fetch.")
	if err != nil {
		return "", fmt.Errorf("cannot create a temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)

	tarball := filepath.Join(root, tarballName)
	if err := verifyFile(tarball, TarballSHA256); err == nil {
		logger.Info("chdb using cached tarball", "path", tarball)
	} else {
		npm, err := exec.LookPath("npm")
		if err != nil {
			return "", fmt.Errorf("cannot fetch %s: npm is not installed: %w", Package, err)
		}
		logger.Info("chdb downloading the engine with npm pack; 166 MB, this takes a while",
			"package", Package, "dest", dest)
		start := time.Now()
		cmd := exec.CommandContext(ctx, npm, "pack", "--silent", Package)
		cmd.Dir = tmp
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("cannot fetch %s with npm pack: %w: %s", Package, err, lastLine(out))
		}
		tarball = filepath.Join(tmp, tarballName)
		if err := verifyFile(tarball, TarballSHA256); err != nil {
			return "", err
		}
		logger.Info("chdb download complete", "took", time.Since(start).Round(time.Second))
	}
	logger.Info("chdb extracting libchdb.so (559 MB)")
	if err := extractLib(tarball, tmp, dest); err != nil {
		return "", err
	}
	logger.Info("chdb engine installed", "path", dest)
	return dest, nil
}

// verifyFile checks path's sha256.
func verifyFile(path, want string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot verify %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("cannot verify %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("checksum mismatch for %s: want sha256 %s, got %s", path, want, got)
	}
	return nil
}

// extractLib copies package/libchdb.so out of the tarball into dest through a
// temporary file in tmpDir (on dest's file system, so the rename is atomic:
// a reader never sees a partial library).
func extractLib(tarball, tmpDir, dest string) error {
	f, err := os.Open(tarball)
	if err != nil {
		return fmt.Errorf("cannot open %s: %w", tarball, err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", tarball, err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("cannot find package/%s in %s", libName, tarball)
		}
		if err != nil {
			return fmt.Errorf("cannot read %s: %w", tarball, err)
		}
		if h.Name != "package/"+libName || h.Typeflag != tar.TypeReg {
			continue
		}
		out, err := os.CreateTemp(tmpDir, libName+".")
		if err != nil {
			return fmt.Errorf("cannot create a temporary file: %w", err)
		}
		_, err = io.Copy(out, tr)
		if err == nil {
			err = out.Sync()
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(out.Name(), 0o755)
		}
		if err == nil {
			err = os.Rename(out.Name(), dest)
		}
		if err != nil {
			os.Remove(out.Name())
			return fmt.Errorf("cannot install %s: %w", dest, err)
		}
		return nil
	}
}

// lockFile takes an exclusive flock on path, polling so that ctx can end the
// wait. The shell script takes the same lock with flock(1).
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot open lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("cannot lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("cannot lock %s: %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func lastLine(out []byte) string {
	s := string(out)
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			return s[i+1:]
		}
	}
	return s
}
