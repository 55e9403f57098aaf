#!/usr/bin/env bash
# fetch-chdb.sh — put the embedded ClickHouse engine (libchdb.so from chDB) in
# the user cache and print its path. Idempotent: a second run only prints.
#
# The engine is not vendored because it is 559 MB unpacked (166 MB packed);
# it comes from the npm registry with `npm pack`, pinned by version and by the
# tarball's sha256. internal/chdb.Ensure does the same thing from Go; keep the
# constants below in step with internal/chdb/locate.go.
#
# Environment:
#   COCKPIT_CHDB_LIB   use this file instead (must exist; nothing is fetched)
#   XDG_CACHE_HOME     cache root (default $HOME/.cache)
set -euo pipefail

version=26.5.3
package="@chdb/lib-linux-x64-gnu@${version}"
tarball="chdb-lib-linux-x64-gnu-${version}.tgz"
sha256=b874e449710950da3abd7e20376f7bb3387d9e03adcc7082f022be18dfdf316a

log() { printf 'fetch-chdb: %s\n' "$*" >&2; }

if [[ -n "${COCKPIT_CHDB_LIB:-}" ]]; then
	if [[ ! -f "$COCKPIT_CHDB_LIB" ]]; then
		log "COCKPIT_CHDB_LIB=$COCKPIT_CHDB_LIB does not exist"
		exit 1
	fi
	printf '%s\n' "$COCKPIT_CHDB_LIB"
	exit 0
fi

root="${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/cockpit/chdb"
dest="$root/$version/libchdb.so"
if [[ -s "$dest" ]]; then
	printf '%s\n' "$dest"
	exit 0
fi

case "$(uname -s)/$(uname -m)" in
Linux/x86_64) ;;
*)
	log "no chDB package for $(uname -s)/$(uname -m); set COCKPIT_CHDB_LIB"
	exit 1
	;;
esac

mkdir -p "$root/$version"
# One fetcher at a time: `make test` runs several test binaries at once and
# each may call this (or Ensure, which takes the same lock).
exec 9>"$root/.lock"
if command -v flock >/dev/null; then flock 9; fi
if [[ -s "$dest" ]]; then
	printf '%s\n' "$dest"
	exit 0
fi

tmp="$(mktemp -d "$root/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

verify() { [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$sha256" ]]; }

# A tarball left by an earlier manual `npm pack` in the cache root is reused
# when its checksum matches, so nothing is downloaded twice.
src="$root/$tarball"
if [[ -f "$src" ]] && verify "$src"; then
	log "using cached $src"
else
	command -v npm >/dev/null || {
		log "npm is required to fetch $package"
		exit 1
	}
	log "downloading $package (166 MB, 559 MB unpacked) with npm pack; this takes a while"
	(cd "$tmp" && npm pack --silent "$package" >/dev/null)
	src="$tmp/$tarball"
	if ! verify "$src"; then
		log "checksum mismatch for $tarball: want $sha256, got $(sha256sum "$src" | cut -d' ' -f1)"
		exit 1
	fi
fi

log "extracting libchdb.so"
tar -xzf "$src" -C "$tmp" package/libchdb.so
chmod 0755 "$tmp/package/libchdb.so"
# Same file system, so the rename is atomic: a reader sees no file or the
# whole file, never a partial one.
mv -f "$tmp/package/libchdb.so" "$dest"
log "installed $dest"
printf '%s\n' "$dest"
