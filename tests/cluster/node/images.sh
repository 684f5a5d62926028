#!/usr/bin/env bash
# Builds the real node's images without any registry, each cached as an OCI archive outside
# the repository and keyed by what goes into it, so a warm run builds nothing:
#   pause    the pod sandbox (a static Go program, ./pause)           key: its source + go version
#   base     Debian bookworm minbase + python3 by debootstrap          key: suite + package list
#   project  images/Dockerfile by buildah with PYTHON_IMAGE=base       key: Dockerfile, pyproject's
#            [project]/[build-system] tables, operator/ sources, base key
# Usage: images.sh pause|base|project|all. Prints "<name> <tag> <archive>" per image.
# Cold on 2 busy cores: pause < 1 min, base ≈ 5-10 min, project ≈ 6-9 min (README has figures).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
cache="${MODELOPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelops}/images"
mkdir -p "$cache"
start=$(date +%s)
step() { echo "[image $(( $(date +%s) - start ))s] $*" >&2; }
digest() { sha256sum | cut -c1-12; }

SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,python-is-python3,ca-certificates
BASE_REVISION=1   # bump when the way the base is packed changes

pause_key() { { cat "$here/pause/main.go" "$here/pause/go.mod"; go version; } | digest; }
base_key() { echo "$SUITE $BASE_PACKAGES $BASE_REVISION" | digest; }
project_key() {
  # Only what goes into the image: pytest or ruff settings in pyproject.toml, or README prose
  # (the package's long description), do not rebuild it.
  { base_key
    cd "$repo"
    cat images/Dockerfile images/Dockerfile.dockerignore
    python3 -c 'import json, sys, tomllib; d = tomllib.load(open("pyproject.toml", "rb")); print(json.dumps([d.get("project"), d.get("build-system"), d.get("tool", {}).get("setuptools")], sort_keys=True))'
    # Sources only: git's view (tracked and new files, not ignored ones such as the egg-info
    # that `pip install -e` rewrites), falling back to find outside a work tree.
    { git ls-files -co --exclude-standard operator 2>/dev/null \
        || find operator -type f -not -path '*/__pycache__/*' -not -name '*.pyc' -not -path '*.egg-info/*'; } \
      | LC_ALL=C sort | xargs -r sha256sum
  } | digest
}

# Usage: cached NAME TAG BUILD_FUNCTION — builds under a per-image lock unless the archive exists.
cached() {
  local name="$1" tag="$2" build="$3"
  local out="$cache/$name-${tag##*:}.oci.tar"
  if [[ ! -s "$out" ]]; then
    exec 8>"$cache/$name.lock"
    flock 8
    if [[ ! -s "$out" ]]; then
      step "building $name image $tag"
      "$build" "$tag"
      buildah push -q "$tag" "oci-archive:$out.tmp:$tag" >/dev/null
      mv "$out.tmp" "$out"
      # The archive is the cache; only the base stays in buildah's store (the next build's FROM).
      [[ $name == base ]] || buildah rmi -f "$tag" >/dev/null 2>&1 || true
      step "built $name: $(du -h "$out" | cut -f1) archive"
      # Keep the three newest archives of each image (branches alternate), drop older ones.
      ls -t "$cache/$name"-*.oci.tar 2>/dev/null | tail -n +4 | xargs -r rm -f
    fi
    exec 8>&-
  fi
  echo "$name $tag $out"
}

# Makes TAG present in buildah's storage, from the cached archive when the store was wiped.
ensure_local() {
  local name="$1" tag="$2"
  buildah inspect --type image "$tag" >/dev/null 2>&1 && return
  # The archive's ref name is the tag, so the pulled image is named as before.
  buildah pull -q "oci-archive:$cache/$name-${tag##*:}.oci.tar" >/dev/null
}

build_pause() {
  local tag="$1" tmp
  tmp="$(mktemp -d)"
  (cd "$here/pause" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$tmp/pause" .)
  local ctr
  ctr="$(buildah from scratch)"
  buildah copy -q "$ctr" "$tmp/pause" /pause >/dev/null
  buildah config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
  buildah commit -q --format oci "$ctr" "$tag" >/dev/null
  buildah rm "$ctr" >/dev/null
  rm -rf "$tmp"
}

debian_mirror() {
  # The mirror apt already uses: the only Debian source this machine reaches.
  local m
  m="$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
  [[ -z "$m" ]] && m="$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
  echo "${m:-http://deb.debian.org/debian}"
}

build_base() {
  local tag="$1" tmp
  tmp="$(mktemp -d "$cache/base.XXXX")"
  debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$tmp/rootfs" "$(debian_mirror)" >"$tmp/debootstrap.log" 2>&1 \
    || { tail -20 "$tmp/debootstrap.log" >&2; exit 1; }
  rm -rf "$tmp/rootfs"/var/lib/apt/lists/* "$tmp/rootfs"/var/cache/apt/* "$tmp/rootfs"/usr/share/doc \
         "$tmp/rootfs"/usr/share/man "$tmp/rootfs"/usr/share/info "$tmp/rootfs"/var/log/*
  tar -C "$tmp/rootfs" --numeric-owner -cf "$tmp/rootfs.tar" .
  local ctr
  ctr="$(buildah from scratch)"
  buildah add -q "$ctr" "$tmp/rootfs.tar" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd '["python3"]' "$ctr"
  buildah commit -q --format oci "$ctr" "$tag" >/dev/null
  buildah rm "$ctr" >/dev/null
  rm -rf "$tmp"
}

build_project() {
  local tag="$1" base_tag
  base_tag="localhost/modelops/python:$(base_key)"
  ensure_local base "$base_tag"
  # pip inside the build reaches PyPI through this machine's TLS proxy: the host's CA bundle and
  # pip.conf are mounted read-only for the RUN steps only, never copied into the image.
  local mounts=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
  [[ -f /etc/pip.conf ]] && mounts+=(-v /etc/pip.conf:/etc/pip.conf:ro)
  (cd "$repo" && buildah bud -q --format oci --network host --layers=false "${mounts[@]}" \
     --build-arg "PYTHON_IMAGE=$base_tag" -f images/Dockerfile -t "$tag" . >/dev/null)
}

what="${1:-all}"
case "$what" in
  pause) cached pause "localhost/modelops/pause:$(pause_key)" build_pause ;;
  base) cached base "localhost/modelops/python:$(base_key)" build_base ;;
  project)
    cached base "localhost/modelops/python:$(base_key)" build_base >/dev/null
    cached project "localhost/modelops/modelops:$(project_key)" build_project ;;
  all)
    cached pause "localhost/modelops/pause:$(pause_key)" build_pause
    cached base "localhost/modelops/python:$(base_key)" build_base
    cached project "localhost/modelops/modelops:$(project_key)" build_project ;;
  *) echo "usage: $0 pause|base|project|all" >&2; exit 2 ;;
esac
