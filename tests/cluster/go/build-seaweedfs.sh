#!/usr/bin/env bash
# Builds SeaweedFS's `weed` (the S3 gateway the storage tests run against) from its
# Go module into the same cache as the cluster binaries, keyed by the pinned version
# and the wrapper module's go.sum, so a warm run builds nothing.
# Prints the bin directory on its last line.
#
# SeaweedFS publishes no semver tags and its go.mod carries a replace directive, so
# `go install …@version` cannot build it; the wrapper module in ./seaweedfs pins the
# pseudo-version and copies the replace.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/versions.env"

sums="$(cat "$here/seaweedfs/go.mod" "$here/seaweedfs/go.sum" | sha256sum | cut -c1-12)"
key="seaweedfs-${SEAWEEDFS_VERSION}-${sums}"
cache="${MODELOPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelops}"
bin="$cache/$key/bin"

if [[ -x "$bin/weed" ]]; then
  echo "seaweedfs cached in $bin" >&2
  echo "$bin"; exit 0
fi

mkdir -p "$cache"
# One builder at a time: a second caller waits, then finds the binary cached.
exec 9>"$cache/.build-seaweedfs.lock"
flock 9
if [[ -x "$bin/weed" ]]; then echo "$bin"; exit 0; fi

mkdir -p "$bin.partial"
export CGO_ENABLED=0
start=$(date +%s)
echo "[build 0s] building weed ${SEAWEEDFS_VERSION} (cold: many minutes on 2 cores)" >&2
(cd "$here/seaweedfs" && go build -trimpath -ldflags "-s -w" -o "$bin.partial/weed.tmp" github.com/seaweedfs/seaweedfs/weed)
mv "$bin.partial/weed.tmp" "$bin.partial/weed"
rm -rf "$bin" && mv "$bin.partial" "$bin"
echo "[build $(( $(date +%s) - start ))s] done; $(du -sh "$cache/$key" | cut -f1) in $bin" >&2
echo "$bin"
