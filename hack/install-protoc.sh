#!/usr/bin/env bash
# Installs protoc of a pinned release into a directory of its own, without
# touching the system's packages.
#
#   hack/install-protoc.sh <dest-dir> <protoc-version>
#
# protoc comes from Debian's protobuf-compiler package: the package and the
# two libraries it links against are fetched with `apt-get download` and
# unpacked with `dpkg-deb -x`; <dest-dir>/protoc is a wrapper that runs the
# unpacked binary against the unpacked libraries.
#
# The pin is protoc's own release (e.g. 3.21.12), the version written into
# the header of every generated .pb.go file, not Debian's package revision:
# Debian's mirror serves only the newest revision of a release (a security
# fix such as 3.21.12-3 -> 3.21.12-3+deb12u1 replaces the old one), so a
# pinned revision stops being installable. Any revision of the pinned release
# is taken; the script fails when the mirror has none or when the binary
# reports another release. <dest-dir>/debian-version records what was used.
set -euo pipefail

dest=${1:?usage: $0 <dest-dir> <protoc-version>}
version=${2:?usage: $0 <dest-dir> <protoc-version>}

# The newest Debian revision of protobuf-compiler that packages $version.
revision() {
  apt-cache madison protobuf-compiler 2>/dev/null |
    awk -F' *[|] *' -v v="$version" 'index($2, v "-") == 1 {print $2; exit}'
}
deb_version=$(revision)
if [ -z "$deb_version" ]; then
  echo "Fetching Debian's package lists (no protobuf-compiler $version in them)"
  apt-get update -qq
  deb_version=$(revision)
fi
[ -n "$deb_version" ] || {
  echo "Debian has no protobuf-compiler of protoc $version ('apt-cache madison protobuf-compiler' lists what it has)." >&2
  echo "Another release changes the protoc line of runtime/internal/serving/stagepb/*.pb.go: bump PROTOC_VERSION and run make proto." >&2
  exit 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# protobuf-compiler depends on libprotoc32 of the same revision, which needs
# libprotobuf32 of the same release.
(cd "$tmp" && apt-get download -qq \
  "protobuf-compiler=$deb_version" "libprotoc32=$deb_version" "libprotobuf32=$deb_version" >/dev/null 2>&1) || {
  echo "apt-get download of protobuf-compiler=$deb_version failed." >&2
  exit 1
}
root=$tmp/root
for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$root"; done

rm -rf "$dest"
mkdir -p "$dest/lib"
cp "$root"/usr/bin/protoc "$dest/protoc.bin"
cp -P "$root"/usr/lib/*/libproto*.so.* "$dest/lib/"
echo "$deb_version" > "$dest/debian-version"
cat > "$tmp/protoc" <<'EOF'
#!/bin/sh
dir=$(dirname "$0")
LD_LIBRARY_PATH="$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$dir/protoc.bin" "$@"
EOF
chmod +x "$tmp/protoc"

got=$(LD_LIBRARY_PATH="$dest/lib" "$dest/protoc.bin" --version)
[ "$got" = "libprotoc $version" ] || {
  echo "protobuf-compiler=$deb_version reports '$got', want 'libprotoc $version'." >&2
  exit 1
}
# The wrapper goes in last: make takes its presence for a finished install.
mv "$tmp/protoc" "$dest/protoc"
echo "Installed $got (Debian protobuf-compiler $deb_version) in $dest"
