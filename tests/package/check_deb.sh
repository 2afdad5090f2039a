#!/usr/bin/env bash
# Builds the Debian package and checks what an operator gets from it:
#   tests/package/check_deb.sh BUILD_DIR
# - control data: name, version, the libraries crmsync links as Depends, FreeTDS recommended;
# - contents: the binary, crmsync(1) with a section per subcommand, the examples;
# - apt resolves its dependencies on this Debian (apt-get install --simulate);
# - the packaged binary runs and says the same version as the built one.
set -euo pipefail
build=$(cd "$1" && pwd)
fail() { echo "check_deb: $*" >&2; exit 1; }

cmake --build "$build" --target package >/dev/null
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
deb="$build/crmsync_${version}_$(dpkg --print-architecture).deb"
[[ -f $deb ]] || fail "no package at $deb"

info=$(dpkg-deb --info "$deb")
for field in "Package: crmsync" "Version: $version" "Recommends: tdsodbc"; do
    grep -q "$field" <<<"$info" || fail "control lacks '$field'"
done
depends=$(sed -n 's/^ Depends: //p' <<<"$info")
libs=(libcurl4 libpq5 libsqlite3-0 libsoci-core libsoci-postgresql libsoci-mysql libsoci-odbc
    libsoci-sqlite3 libsimdjson14)
[[ $(sed -n 's/^CRMSYNC_JEMALLOC:BOOL=//p' "$build/CMakeCache.txt") == ON ]] && libs+=(libjemalloc2)
for lib in "${libs[@]}"; do
    grep -q "$lib" <<<"$depends" || fail "Depends lacks $lib: $depends"
done

contents=$(dpkg-deb --contents "$deb" | awk '{print $NF}')
for path in ./usr/bin/crmsync ./usr/share/man/man1/crmsync.1.gz \
    ./usr/share/doc/crmsync/examples/crontab.example ./usr/share/doc/crmsync/copyright; do
    grep -qx "$path" <<<"$contents" || fail "package lacks $path"
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp"
packaged=$("$tmp/usr/bin/crmsync" --version)
[[ $packaged == "$("$build/crmsync" --version)" ]] || fail "packaged binary says '$packaged'"

page=$(zcat "$tmp/usr/share/man/man1/crmsync.1.gz")
commands=$("$build/crmsync" --help | awk '/^Subcommands:/ {on = 1; next} on && /^  [^ ]/ {print $1}')
for c in $commands; do
    grep -qx ".SS $c" <<<"$page" || fail "man page has no section for '$c'"
done
for section in "EXIT STATUS" ENVIRONMENT FILES; do
    grep -qx ".SH $section" <<<"$page" || fail "man page has no $section"
done

apt-get install --simulate "$deb" >"$tmp/apt.log" 2>&1 || {
    cat "$tmp/apt.log" >&2
    fail "apt cannot resolve the package's dependencies"
}
echo "check_deb: $(basename "$deb") ok ($(wc -c <"$deb") bytes, $(wc -w <<<"$commands") commands in crmsync(1))"
