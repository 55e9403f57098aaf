package chdb

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeTarball writes an npm-pack-shaped tarball holding lib as
// package/libchdb.so and returns its path and sha256.
func fakeTarball(t *testing.T, lib []byte) (string, string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range map[string][]byte{"package/package.json": []byte("{}"), "package/libchdb.so": lib} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	gz.Close()
	p := filepath.Join(t.TempDir(), tarballName)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return p, hex.EncodeToString(sum[:])
}

func TestExtractLib(t *testing.T) {
	tarball, sum := fakeTarball(t, []byte("ELF pretend"))
	if err := verifyFile(tarball, sum); err != nil {
		t.Fatal(err)
	}
	if err := verifyFile(tarball, TarballSHA256); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("mismatch not detected: %v", err)
	}
	dir := t.TempDir()
	dest := filepath.Join(dir, "libchdb.so")
	if err := extractLib(tarball, dir, dest); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dest)
	if err != nil || string(got) != "ELF pretend" {
		t.Fatalf("extracted %q %v", got, err)
	}
	if st, _ := os.Stat(dest); st.Mode().Perm() != 0o755 {
		t.Fatalf("mode %v", st.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func TestLocate(t *testing.T) {
	t.Setenv(EnvLib, "")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	if _, err := Locate(); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("empty cache: %v", err)
	}
	p, _ := CachePath()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := Locate(); err != nil || got != p {
		t.Fatalf("Locate = %q, %v", got, err)
	}
	t.Setenv(EnvLib, filepath.Join(t.TempDir(), "missing.so"))
	if _, err := Locate(); err == nil || errors.Is(err, ErrNotInstalled) {
		t.Fatalf("missing %s: %v", EnvLib, err)
	}
}

func TestEnsureUsesCachedTarball(t *testing.T) {
	// A tarball already in the cache root is used, with its checksum
	// checked: a wrong one is not installed, and npm is not needed for
	// the verdict because the fake has the wrong sha256 for the pin.
	cache := t.TempDir()
	t.Setenv(EnvLib, "")
	t.Setenv("XDG_CACHE_HOME", cache)
	t.Setenv("PATH", "") // no npm: Ensure must not try to download
	tarball, _ := fakeTarball(t, []byte("not the pinned engine"))
	root := filepath.Join(cache, "cockpit", "chdb")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(tarball)
	if err := os.WriteFile(filepath.Join(root, tarballName), data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Ensure(t.Context(), nil)
	if err == nil || !strings.Contains(err.Error(), "npm") {
		t.Fatalf("Ensure with a bad cached tarball and no npm: %v", err)
	}
	if p, _ := CachePath(); fileExists(p) {
		t.Fatal("an unverified library was installed")
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
