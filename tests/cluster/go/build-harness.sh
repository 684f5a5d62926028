#!/usr/bin/env bash
# Builds one of the check harnesses (a small Go main in ./grafana-schema or ./argocd-health that
# runs the real tool's own code on our shipped assets) into the same cache as the cluster binaries,
# keyed by the pinned version and the wrapper module's go.mod, go.sum and sources, so a warm run
# builds nothing. Prints the binary's path on its last line.
#   build-harness.sh grafana-schema | argocd-health
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/versions.env"
source "$here/cached-build.sh"

name="${1:?usage: build-harness.sh grafana-schema|argocd-health}"
case "$name" in
  grafana-schema) version="$GRAFANA_SDK_VERSION"; module="github.com/grafana/grafana-foundation-sdk/go" ;;
  argocd-health) version="$ARGOCD_VERSION"; module="github.com/argoproj/argo-cd/v3" ;;
  *) echo "build-harness.sh: unknown harness $name" >&2; exit 2 ;;
esac
src="$here/$name"
# The pin in versions.env is the one go.mod must require: a bump of one without the other fails here.
grep -qE "^\s*(require\s+)?${module//./\\.} ${version//./\\.}\s*$" "$src/go.mod" || {
  echo "build-harness.sh: $src/go.mod does not require $module $version (versions.env)" >&2; exit 1; }

sums="$(cat "$src/go.mod" "$src/go.sum" "$src"/*.go | sha256sum | cut -c1-12)"
cached_go_build "$name" "$name" "${name}-${version}-${sums}" "$src" . \
  "$name against $module $version (cold: minutes on 2 cores)" -trimpath -ldflags "-s -w"
echo "$bin/$name"
