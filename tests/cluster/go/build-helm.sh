#!/usr/bin/env bash
# Builds the helm CLI from its Go module (helm.sh/helm/v4/cmd/helm, through the wrapper module in
# ./helm) into the same cache as the cluster binaries, keyed by the pinned version and the wrapper
# module's go.sum, so a warm run builds nothing. The chart tests lint and render with it.
# Prints the binary's path on its last line.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/versions.env"

sums="$(cat "$here/helm/go.mod" "$here/helm/go.sum" | sha256sum | cut -c1-12)"
key="helm-${HELM_VERSION}-${sums}"
cache="${MODELOPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelops}"
bin="$cache/$key/bin"

if [[ -x "$bin/helm" ]]; then
  echo "helm cached in $bin" >&2
  echo "$bin/helm"; exit 0
fi

mkdir -p "$cache"
# One builder at a time: a second caller waits, then finds the binary cached.
exec 9>"$cache/.build-helm.lock"
flock 9
if [[ -x "$bin/helm" ]]; then echo "$bin/helm"; exit 0; fi

mkdir -p "$bin.partial"
export CGO_ENABLED=0
start=$(date +%s)
echo "[build 0s] building helm ${HELM_VERSION} (cold: a few minutes on 2 cores)" >&2
# The version stamp `helm version` prints, as Helm's own Makefile sets it.
(cd "$here/helm" && go build -mod=readonly -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
  -o "$bin.partial/helm.tmp" helm.sh/helm/v4/cmd/helm)
mv "$bin.partial/helm.tmp" "$bin.partial/helm"
rm -rf "$bin" && mv "$bin.partial" "$bin"
echo "[build $(( $(date +%s) - start ))s] done; $(du -sh "$cache/$key" | cut -f1) in $bin" >&2
echo "$bin/helm"
