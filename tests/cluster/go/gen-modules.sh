#!/usr/bin/env bash
# Regenerates the wrapper modules (etcd, kubernetes, kubectl, kwok, prometheus, seaweedfs, helm) from versions.env.
#
# k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with
# ./staging paths, which a dependent module cannot use; we derive the list of
# staging modules from the pinned release's own go.mod and replace each with its
# published v0.X.Y tag.
set -euo pipefail
cd "$(dirname "$0")"
source ./versions.env

kube_minor_patch="${KUBERNETES_VERSION#v1.}"          # 35.4
staging_tag="v0.${kube_minor_patch}"                  # v0.35.4

gomod_path="$(go mod download -json "k8s.io/kubernetes@${KUBERNETES_VERSION}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
staging="$(sed -n '/^replace (/,/^)/p' "$gomod_path" | awk '$2=="=>" && $3 ~ /^\.\/staging\// {print $1}')"

( cd kubernetes
  rm -f go.mod go.sum
  go mod init modelops.dev/testcluster/kubernetes >/dev/null 2>&1
  for m in $staging; do go mod edit -replace "$m=$m@$staging_tag"; done
  go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@${KUBERNETES_VERSION}" \
               "k8s.io/kubernetes/cmd/kube-controller-manager@${KUBERNETES_VERSION}" \
               "k8s.io/kubernetes/cmd/kube-scheduler@${KUBERNETES_VERSION}" \
               "k8s.io/kubernetes/cmd/kubelet@${KUBERNETES_VERSION}" \
               "k8s.io/kubernetes/cmd/kube-proxy@${KUBERNETES_VERSION}"
  go mod tidy )

# kubectl: its own wrapper module, with the same staging replaces and the same k8s.io/kubernetes
# release, so that adding it changes neither the kubernetes module nor the cluster binaries' key
# (the dependencies both share resolve to the same versions, so Go's build cache serves both).
( cd kubectl
  rm -f go.mod go.sum
  go mod init modelops.dev/testcluster/kubectl >/dev/null 2>&1
  for m in $staging; do go mod edit -replace "$m=$m@$staging_tag"; done
  go get -tool "k8s.io/kubernetes/cmd/kubectl@${KUBERNETES_VERSION}"
  go mod tidy )

( cd etcd
  rm -f go.mod go.sum
  go mod init modelops.dev/testcluster/etcd >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
  go mod tidy )

( cd kwok
  rm -f go.mod go.sum
  go mod init modelops.dev/testcluster/kwok >/dev/null 2>&1
  go get -tool "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
  go mod tidy )
( cd prometheus
  rm -f go.mod go.sum
  go mod init modelops.dev/testcluster/prometheus >/dev/null 2>&1
  go get -tool "github.com/prometheus/prometheus/cmd/prometheus@${PROMETHEUS_VERSION}"
  go mod tidy )
# SeaweedFS (the S3 server of the storage tests) has no semver tags (SEAWEEDFS_VERSION is a
# pseudo-version) and replaces one dependency in its go.mod; a dependent module must copy that.
sw_gomod="$(go mod download -json "github.com/seaweedfs/seaweedfs@${SEAWEEDFS_VERSION}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
( cd seaweedfs
  rm -f go.mod go.sum
  go mod init modelops.dev/testcluster/seaweedfs >/dev/null 2>&1
  grep -E '^replace [^ ]+ => [^./]' "$sw_gomod" | while read -r _ from _ to ver; do
    go mod edit -replace "$from=$to@$ver"
  done
  go get -tool "github.com/seaweedfs/seaweedfs/weed@${SEAWEEDFS_VERSION}"
  go mod tidy )
( cd helm
  rm -f go.mod go.sum
  go mod init modelops.dev/testcluster/helm >/dev/null 2>&1
  go get -tool "helm.sh/helm/v4/cmd/helm@${HELM_VERSION}"
  go mod tidy )
echo "modules regenerated for kubernetes ${KUBERNETES_VERSION}, etcd ${ETCD_VERSION}, kwok ${KWOK_VERSION}, prometheus ${PROMETHEUS_VERSION}, seaweedfs ${SEAWEEDFS_VERSION}, helm ${HELM_VERSION}"
