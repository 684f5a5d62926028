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
source "$here/cached-build.sh"

sums="$(cat "$here/seaweedfs/go.mod" "$here/seaweedfs/go.sum" | sha256sum | cut -c1-12)"
cached_go_build seaweedfs weed "seaweedfs-${SEAWEEDFS_VERSION}-${sums}" "$here/seaweedfs" \
  github.com/seaweedfs/seaweedfs/weed "weed ${SEAWEEDFS_VERSION} (cold: many minutes on 2 cores)" \
  -trimpath -ldflags "-s -w"
echo "$bin"
