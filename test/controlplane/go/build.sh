#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager, kubectl) from the
# Go module proxy into OUT_DIR. The caller (test/controlplane/assets.ts) picks OUT_DIR from a cache
# key, so this runs once per version; progress goes to stderr because the first build takes minutes.
set -euo pipefail
out=${1:?usage: build.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
kube_version=$(cd "$here/kubernetes" && go list -m -f "{{.Version}}" k8s.io/kubernetes)
IFS=. read -r kube_major kube_minor _ <<<"${kube_version#v}"
tmp="$out.partial.$$"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
stamp="-X k8s.io/component-base/version.gitVersion=$kube_version -X k8s.io/component-base/version.gitMajor=$kube_major -X k8s.io/component-base/version.gitMinor=$kube_minor -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$kube_version -X k8s.io/client-go/pkg/version.gitMajor=$kube_major -X k8s.io/client-go/pkg/version.gitMinor=$kube_minor"
step() { echo "[controlplane] $(date +%T) $*" >&2; }
step "building etcd ($(cd "$here/etcd" && go list -m -f "{{.Version}}" go.etcd.io/etcd/server/v3)) into $out"
(cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
for cmd in kube-apiserver kube-controller-manager kubectl; do
  step "building $cmd $kube_version (the first build takes several minutes on 2 cores)"
  (cd "$here/kubernetes" && go build -trimpath -ldflags "-s -w $stamp" -o "$tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd")
done
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
step "done: $(du -sh "$out" | cut -f1) in $out"
