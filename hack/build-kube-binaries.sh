#!/usr/bin/env bash
# Builds the Kubernetes binaries the tests need from source and caches them.
#
#   hack/build-kube-binaries.sh <dest-dir> [binary...]
#
# Binaries: etcd kube-apiserver kubectl (default), and any other command under
# hack/kube/cmd. Builds are cached per version in $RECPIPELINE_CACHE
# (default ~/.cache/recpipeline) so a fresh clone on a warm machine copies
# instead of compiling; <dest-dir> receives the binaries.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:?usage: $0 <dest-dir> [binary...]}
shift
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=(etcd kube-apiserver kubectl)

# The version a module requires, from a go.mod line such as
# "require k8s.io/kubernetes v1.37.2" or "	k8s.io/kubernetes v1.37.2".
required() { awk -v m="$2" '$1 == m {print $2} $1 == "require" && $2 == m {print $3}' "$1" | head -n 1; }
kube_version=$(required "$root/hack/kube/go.mod" k8s.io/kubernetes)
etcd_version=$(required "$root/hack/etcd/go.mod" go.etcd.io/etcd/server/v3)
[ -n "$kube_version" ] && [ -n "$etcd_version" ] || { echo "cannot read versions from hack/*/go.mod" >&2; exit 1; }
cache=${RECPIPELINE_CACHE:-$HOME/.cache/recpipeline}/bin
mkdir -p "$dest" "$cache"

# What a first build took on a fresh 2-core machine (modules from the proxy,
# empty Go build cache), where it was measured; later builds reuse the cache.
declare -A expect=([kube-apiserver]="32 minutes seen")

for bin in "${bins[@]}"; do
  if [ "$bin" = etcd ]; then
    version=$etcd_version; dir=$root/hack/etcd; pkg=.
  else
    version=$kube_version; dir=$root/hack/kube; pkg=./cmd/$bin
  fi
  # The Kubernetes binaries report their release (kubectl version, Helm's
  # kubeVersion checks) only when it is stamped in at link time.
  ldflags=""
  if [ "$bin" != etcd ]; then
    ldflags="-X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=$(echo "$version" | cut -d. -f1 | tr -d v) -X k8s.io/component-base/version.gitMinor=$(echo "$version" | cut -d. -f2)"
  fi
  cached=$cache/$bin-$version-stamped
  [ "$bin" = etcd ] && cached=$cache/$bin-$version
  if [ ! -x "$cached" ]; then
    echo "Building $bin $version from source, once (cached in $cache; on 2 cores with an empty Go build cache: ${expect[$bin]:-minutes})"
    (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$cached.tmp" "$pkg") &
    build=$!
    # A line a minute, so that a long first build is not mistaken for a hang.
    started=$SECONDS
    while kill -0 "$build" 2>/dev/null; do
      for _ in $(seq 1 60); do
        kill -0 "$build" 2>/dev/null || break
        sleep 1
      done
      kill -0 "$build" 2>/dev/null && echo "  still building $bin: $(((SECONDS - started) / 60)) min so far"
    done
    wait "$build"
    echo "  built $bin in $((SECONDS - started)) s"
    mv "$cached.tmp" "$cached"
  fi
  if ! cmp -s "$cached" "$dest/$bin"; then
    # Renaming over the old copy works even while it runs.
    cp "$cached" "$dest/$bin.tmp" && mv -f "$dest/$bin.tmp" "$dest/$bin"
  fi
done
