#!/usr/bin/env bash
# Builds the helm CLI from its Go module (helm.sh/helm/v4/cmd/helm, through the wrapper module in
# ./helm) into the same cache as the cluster binaries, keyed by the pinned version and the wrapper
# module's go.sum, so a warm run builds nothing. The chart tests lint and render with it.
# Prints the binary's path on its last line.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/versions.env"
source "$here/cached-build.sh"

sums="$(cat "$here/helm/go.mod" "$here/helm/go.sum" | sha256sum | cut -c1-12)"
# The version stamp `helm version` prints, as Helm's own Makefile sets it.
cached_go_build helm helm "helm-${HELM_VERSION}-${sums}" "$here/helm" helm.sh/helm/v4/cmd/helm \
  "helm ${HELM_VERSION} (cold: a few minutes on 2 cores)" -mod=readonly -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
echo "$bin/helm"
