#!/usr/bin/env bash
# Builds Kubernetes and etcd binaries from the Go module proxy (no other downloads)
# and caches them outside the clone, keyed by version.
#
#   hack/k8s-bins.sh [kube-apiserver|kubelet|kube-controller-manager|kube-scheduler|kube-proxy|kubectl|etcd ...]
#
# With no arguments it builds what envtest needs (kube-apiserver, etcd). It prints
# the directory holding the binaries on stdout; progress goes to stderr.
# Concurrent invocations are serialized by a lock in the cache directory, so two
# callers never build the same binary twice (and never compete for the CPU).
# The Kubernetes commands that are missing are built by one `go build`, so their
# shared packages and their links keep both cores busy to the end.
#
# How: a throwaway wrapper module requires k8s.io/kubernetes and replaces every
# k8s.io staging repository (read from k8s.io/kubernetes's own go.mod) with the
# published v0.<minor>.<patch> tag; etcd comes from a two-line main that calls
# go.etcd.io/etcd/server/v3/etcdmain.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.7.0}
CACHE=${XDNA_CACHE:-/var/cache/xdna-whisper}
STAGING_VERSION="v0.${K8S_VERSION#v1.}"
BIN="$CACHE/k8s/$K8S_VERSION/bin"
WRAP="$CACHE/k8s/$K8S_VERSION/wrapper"
ETCDWRAP="$CACHE/etcd/$ETCD_VERSION/wrapper"
# The commands the wrapper module can build; its .complete marker records this
# list, so adding a command here regenerates the module once.
K8S_CMDS="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl"

bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=(kube-apiserver etcd)

log() { echo "k8s-bins: $*" >&2; }

mkdir -p "$BIN"
exec 9>"$CACHE/k8s/$K8S_VERSION/.lock"
if ! flock -n 9; then
  log "another k8s-bins.sh holds $CACHE/k8s/$K8S_VERSION/.lock; waiting"
  flock 9
fi

# wrapper_module writes (idempotently) the module that builds k8s.io/kubernetes commands.
wrapper_module() {
  [ -f "$WRAP/go.sum" ] && [ "$(cat "$WRAP/.complete" 2>/dev/null)" = "$K8S_CMDS" ] && return 0
  rm -rf "$WRAP" && mkdir -p "$WRAP"
  local gomod
  gomod=$(cd "$WRAP" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module xdna-whisper.local/k8s-wrapper"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk '{print $1}' |
      grep -vE '^k8s\.io/(sample-cli-plugin|sample-controller)$' |
      while read -r repo; do echo "replace $repo => $repo $STAGING_VERSION"; done
  } > "$WRAP/go.mod"
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for c in $K8S_CMDS; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
    printf '\t_ "k8s.io/kubectl/pkg/cmd"\n)\n'
  } > "$WRAP/tools.go"
  (cd "$WRAP" && GOFLAGS=-mod=mod go mod tidy >&2)
  echo "$K8S_CMDS" > "$WRAP/.complete"
}

etcd_module() {
  [ -f "$ETCDWRAP/.complete" ] && return 0
  rm -rf "$ETCDWRAP" && mkdir -p "$ETCDWRAP"
  cat > "$ETCDWRAP/go.mod" <<GOMOD
module xdna-whisper.local/etcd-wrapper

go 1.26

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
GOMOD
  cat > "$ETCDWRAP/main.go" <<'GO'
// Command etcd runs etcd's own main, built from the Go module proxy.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$ETCDWRAP" && GOFLAGS=-mod=mod go mod tidy >&2)
  touch "$ETCDWRAP/.complete"
}

# The version every Kubernetes binary reports (a build from the module proxy
# would otherwise say v0.0.0-master, which confuses version checks, e.g. helm's
# kubeVersion constraint).
minor=${K8S_VERSION#v1.}
minor=${minor%%.*}
VERSION_LDFLAGS=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  VERSION_LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

# stamped BINARY: the cached binary reports $K8S_VERSION (etcd: exists).
stamped() {
  case "$1" in
    etcd) return 0 ;;
    kubectl) "$BIN/kubectl" version --client 2>/dev/null | grep -q "$K8S_VERSION" ;;
    *) "$BIN/$1" --version 2>/dev/null | grep -q "$K8S_VERSION" ;;
  esac
}

k8s=()
for b in "${bins[@]}"; do
  case "$b" in
    etcd | kube-apiserver | kube-controller-manager | kube-scheduler | kubelet | kube-proxy | kubectl) ;;
    *) echo "k8s-bins: unknown binary $b (want kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl or etcd)" >&2; exit 2 ;;
  esac
  if [ -x "$BIN/$b" ] && stamped "$b"; then continue; fi
  if [ "$b" = etcd ]; then
    start=$(date +%s)
    etcd_module
    (cd "$ETCDWRAP" && CGO_ENABLED=0 go build -trimpath -o "$BIN/.etcd.tmp" .)
    mv -f "$BIN/.etcd.tmp" "$BIN/etcd"
    log "built etcd in $(($(date +%s) - start))s"
  else
    k8s+=("$b")
  fi
done
if [ ${#k8s[@]} -gt 0 ]; then
  start=$(date +%s)
  wrapper_module
  tmp="$BIN/.build"
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$WRAP" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w$VERSION_LDFLAGS" -o "$tmp/" "${k8s[@]/#/k8s.io/kubernetes/cmd/}")
  for b in "${k8s[@]}"; do mv -f "$tmp/$b" "$BIN/$b"; done
  rmdir "$tmp"
  log "built ${k8s[*]} in $(($(date +%s) - start))s"
fi
echo "$BIN"
