#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, etcd and kwok
# from their Go modules into a cache outside the repository, keyed by the pinned
# versions and the wrapper modules' go.sum, so a warm run builds nothing.
# With --node it also builds kubelet and kube-proxy (from the same kubernetes wrapper
# module, ≈ 8 min cold on 2 cores) for the real node; without it they are not needed.
# Prints the bin directory on its last line. --prometheus and --kubectl build one more
# binary each, under a key of its own, and print its path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/versions.env"

sums="$(cat "$here"/{etcd,kubernetes,kwok}/go.mod "$here"/{etcd,kubernetes,kwok}/go.sum | sha256sum | cut -c1-12)"
key="k8s-${KUBERNETES_VERSION}-etcd-${ETCD_VERSION}-kwok-${KWOK_VERSION}-${sums}"
cache="${MODELOPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelops}"
bin="$cache/$key/bin"
binaries=(kube-apiserver kube-controller-manager kube-scheduler etcd kwok)

# Version stamps of the Kubernetes binaries, as a release build sets them.
minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
kube_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${KUBERNETES_VERSION} \
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor} \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=${KUBERNETES_VERSION} \
 -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=${minor}"

if [[ "${1:-}" == "--prometheus" ]]; then
  # Prometheus with kubernetes_sd_configs, which Debian's package leaves out; its own key, so it
  # never invalidates the cluster binaries. Prints the binary's path. Only the kubernetes service
  # discovery is compiled in (prometheus/plugins.go.in replaces the module's plugin list).
  psums="$(cat "$here"/prometheus/{go.mod,go.sum,plugins.go.in} | sha256sum | cut -c1-12)"
  pdir="$cache/prometheus-${PROMETHEUS_VERSION}-${psums}"
  if [[ ! -x "$pdir/prometheus" ]]; then
    mkdir -p "$pdir"
    exec 9>"$cache/.build-prometheus.lock"
    flock 9
    if [[ ! -x "$pdir/prometheus" ]]; then
      start=$(date +%s)
      echo "[build] building prometheus ${PROMETHEUS_VERSION}" >&2
      # Go refuses overlays of the module cache, so the module is copied with its plugin list
      # replaced and the wrapper's go.mod gets a replace directive (a copy, -modfile). `go list -m`
      # names no folder for a module not yet downloaded: a fresh machine's cache is empty.
      work="$pdir/src"; rm -rf "$work"; mkdir -p "$work"
      (cd "$here/prometheus" \
        && go mod download github.com/prometheus/prometheus \
        && src="$(go list -m -f '{{.Dir}}' github.com/prometheus/prometheus)" \
        && [[ -d "$src" ]] \
        && cp -r "$src" "$work/prometheus" \
        && chmod -R u+w "$work/prometheus" \
        && cp plugins.go.in "$work/prometheus/plugins/plugins.go" \
        && cp go.sum "$work/go.sum" \
        && { cat go.mod; echo "replace github.com/prometheus/prometheus => $work/prometheus"; } >"$work/go.mod" \
        && CGO_ENABLED=0 go build -modfile "$work/go.mod" -trimpath -tags netgo \
        -ldflags "-s -w -X github.com/prometheus/common/version.Version=${PROMETHEUS_VERSION}" \
        -o "$pdir/prometheus.tmp" github.com/prometheus/prometheus/cmd/prometheus)
      rm -rf "$work"
      mv "$pdir/prometheus.tmp" "$pdir/prometheus"
      echo "[build $(( $(date +%s) - start ))s] prometheus done" >&2
    fi
  fi
  echo "$pdir/prometheus"; exit 0
fi
if [[ "${1:-}" == "--kubectl" || "${1:-}" == "--kubectl-dir" ]]; then
  # kubectl (k8s.io/kubernetes/cmd/kubectl, the control plane's release) from a wrapper module of
  # its own, ./kubectl, keyed by it alone, in a folder of its own: the kubernetes module and the
  # cluster binaries' key stay as they are. Tests and `make` add the folder to the END of PATH:
  # a kubectl the system has wins. --kubectl-dir only prints the folder (no build).
  ksums="$(cat "$here/kubectl/go.mod" "$here/kubectl/go.sum" | sha256sum | cut -c1-12)"
  kdir="$cache/kubectl-${KUBERNETES_VERSION}-${ksums}"
  [[ "$1" == "--kubectl-dir" ]] && { echo "$kdir"; exit 0; }
  if [[ ! -x "$kdir/kubectl" ]]; then
    mkdir -p "$kdir"
    exec 9>"$cache/.build-kubectl.lock"
    flock 9
    if [[ ! -x "$kdir/kubectl" ]]; then
      start=$(date +%s)
      echo "[build] building kubectl ${KUBERNETES_VERSION}" >&2
      (cd "$here/kubectl" && CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "$kube_ldflags" \
        -o "$kdir/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl)
      mv "$kdir/kubectl.tmp" "$kdir/kubectl"
      echo "[build $(( $(date +%s) - start ))s] kubectl done" >&2
    fi
  fi
  echo "$kdir/kubectl"; exit 0
fi
node_binaries=()
[[ "${1:-}" == "--node" ]] && node_binaries=(kubelet kube-proxy)

complete=1
for b in "${binaries[@]}" "${node_binaries[@]}"; do [[ -x "$bin/$b" ]] || complete=0; done
if [[ $complete == 1 ]]; then
  echo "cluster binaries cached in $bin" >&2
  echo "$bin"; exit 0
fi

mkdir -p "$cache"
# One builder at a time: a second caller waits, then finds the binaries cached.
exec 9>"$cache/.build.lock"
flock 9
complete=1
for b in "${binaries[@]}" "${node_binaries[@]}"; do [[ -x "$bin/$b" ]] || complete=0; done
if [[ $complete == 1 ]]; then echo "$bin"; exit 0; fi

export CGO_ENABLED=0
start=$(date +%s)
step() { echo "[build $(( $(date +%s) - start ))s] $*" >&2; }


build_node() {
  # Added one at a time to the finished bin directory: each appears only when whole.
  for b in "${node_binaries[@]}"; do
    [[ -x "$bin/$b" ]] && continue
    step "building $b ${KUBERNETES_VERSION} (cold: ≈ 4 min each on 2 cores)"
    (cd "$here/kubernetes" && go build -trimpath -ldflags "$kube_ldflags" -o "$bin/$b.tmp" "k8s.io/kubernetes/cmd/$b")
    mv "$bin/$b.tmp" "$bin/$b"
  done
}

control_plane=1
for b in "${binaries[@]}"; do [[ -x "$bin/$b" ]] || control_plane=0; done
if [[ $control_plane == 1 ]]; then
  build_node
  step "done; $(du -sh "$cache/$key" | cut -f1) in $bin"
  echo "$bin"; exit 0
fi

mkdir -p "$bin.partial"
for b in kube-apiserver kube-controller-manager kube-scheduler; do
  [[ -x "$bin.partial/$b" ]] && { step "$b already built"; continue; }
  step "building $b ${KUBERNETES_VERSION} (cold: many minutes on 2 cores)"
  (cd "$here/kubernetes" && go build -trimpath -ldflags "$kube_ldflags" -o "$bin.partial/$b.tmp" "k8s.io/kubernetes/cmd/$b")
  mv "$bin.partial/$b.tmp" "$bin.partial/$b"
done
if [[ ! -x "$bin.partial/etcd" ]]; then
  step "building etcd ${ETCD_VERSION}"
  (cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$bin.partial/etcd.tmp" .)
  mv "$bin.partial/etcd.tmp" "$bin.partial/etcd"
fi
if [[ ! -x "$bin.partial/kwok" ]]; then
  step "building kwok ${KWOK_VERSION}"
  (cd "$here/kwok" && go build -trimpath -ldflags "-s -w" -o "$bin.partial/kwok.tmp" sigs.k8s.io/kwok/cmd/kwok)
  mv "$bin.partial/kwok.tmp" "$bin.partial/kwok"
fi
rm -rf "$bin" && mv "$bin.partial" "$bin"
build_node
step "done; $(du -sh "$cache/$key" | cut -f1) in $bin"
echo "$bin"
