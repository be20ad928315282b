#!/usr/bin/env bash
# Installs what the end-to-end node needs on a Debian 12 machine (idempotent):
# runc, the CNI plugins, iptables and jq from Debian, and containerd 1.7 (Debian 12's
# 1.6 cannot apply CDI specs) and the Kubernetes binaries built from the Go module
# proxy by hack/containerd-bins.sh and hack/k8s-bins.sh (cached under $XDNA_CACHE).
# Prints the Kubernetes binary directory.
set -euo pipefail
cd "$(dirname "$0")/../.."

pkgs=(runc containernetworking-plugins iptables jq)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
hack/containerd-bins.sh >/dev/null
hack/k8s-bins.sh etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl
