# shellcheck shell=bash
# Settings and helpers shared by every part of the end-to-end node.
#
# Every packet stays on loopback or inside network namespaces this script
# creates: the control plane, containerd, the kubelet and kube-proxy run in the
# network namespace $E2E_NAME (a veth pair with $E2E_NODE_IP and no route out),
# and pods get their own namespaces behind its bridge. Only the network
# namespace is entered (nsenter --net), not a mount namespace, so the kubelet's
# volume mounts are visible to containerd and runc.

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_ROOT=$(cd "$E2E_DIR/../.." && pwd)

E2E_NAME=${E2E_NAME:-xdna-e2e}                 # node name, netns, cgroup parent, CNI network
E2E_ROOT=${E2E_ROOT:-/var/lib/xdna-e2e}        # persistent state (PKI, etcd, containerd, configs)
E2E_RUN=${E2E_RUN:-/run/xdna-e2e}              # sockets, pid files, pod network namespaces
E2E_CDI_DIR=$E2E_RUN/cdi                       # the only CDI spec directory containerd reads
E2E_KUBELET_DIR=${E2E_KUBELET_DIR:-/var/lib/kubelet}
E2E_LOGS=${E2E_LOGS:-$REPO_ROOT/bin/e2e-logs}  # survives teardown, replaced by the next run
E2E_NODE_IP=${E2E_NODE_IP:-10.200.0.1}         # on a veth inside the node's netns only
E2E_POD_CIDR=${E2E_POD_CIDR:-10.244.0.0/24}
E2E_SERVICE_CIDR=${E2E_SERVICE_CIDR:-10.97.0.0/24}
E2E_API_SERVICE_IP=${E2E_API_SERVICE_IP:-10.97.0.1}
E2E_BIN=${E2E_BIN:-$REPO_ROOT/bin}           # whisper-encoder, e2e-agent (`make images`)
E2E_IMAGES=${E2E_IMAGES:-$E2E_BIN/images}      # NAME.tar from `make images`
E2E_LOCK=${E2E_LOCK:-/run/lock/xdna-e2e.lock}  # one node on this machine at a time
E2E_TIMEOUT=${E2E_TIMEOUT:-120}                # default seconds for one wait
CNI_BIN_DIR=${CNI_BIN_DIR:-/usr/lib/cni}
XDNA_CACHE=${XDNA_CACHE:-/var/cache/xdna-whisper}

NETNS=/run/netns/$E2E_NAME
PKI=$E2E_ROOT/pki
PIDS=$E2E_RUN/pids
CONTAINERD_SOCK=$E2E_RUN/containerd/containerd.sock
ADMIN_KUBECONFIG=$E2E_ROOT/admin.kubeconfig
# The marker that says a directory outside $E2E_ROOT was created by this script.
OWNED=.xdna-e2e-owned

log() { printf '\033[1m[e2e %s]\033[0m %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

# innet runs a command in the node's network namespace (host mount namespace).
innet() { nsenter --net="$NETNS" -- "$@"; }

# kc is kubectl as cluster admin, from inside the node's network namespace.
kc() { innet "$K8S_BIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" --cache-dir "$E2E_RUN/kubectl-cache" "$@"; }

# ctrc is ctr (of the containerd the node runs) against the node's containerd, in
# the CRI namespace.
ctrc() { "$CONTAINERD_BIN/ctr" --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }

# agent runs our e2e-agent binary (HTTP client) inside the node's network namespace.
agent() { innet "$E2E_BIN/e2e-agent" "$@"; }

# node_lock waits until no other e2e run (of any checkout) holds the machine's node:
# every run uses the same netns, cgroup, kubelet directory and state directories.
node_lock() {
  mkdir -p "$(dirname "$E2E_LOCK")"
  exec 8>"$E2E_LOCK"
  if ! flock -n 8; then
    log "another e2e run holds $E2E_LOCK; waiting for it"
    flock 8
  fi
}

# wait_for DESCRIPTION TIMEOUT CMD...: polls CMD (quietly) until it succeeds.
wait_for() {
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${timeout}s waiting for $what; last attempt said:"
      "$@" 2>&1 | tail -n 20 >&2 || true
      return 1
    fi
    sleep 0.5
  done
}

# utc_now prints the time as the API server writes timestamps (one-second resolution).
utc_now() { date -u +%Y-%m-%dT%H:%M:%SZ; }

# clock_past T: the clock has left second T (from utc_now), so every timestamp
# written from now on compares greater than T.
clock_past() { [[ "$(utc_now)" > "$1" ]]; }

# Timings: timer_start NAME; ...; timer_stop NAME, or timing_add NAME MS for one
# measured otherwise. print_timings shows them all, each with the scenario that measured
# it (E2E_SCENARIO; scenarios share helpers). Names are ASCII (aligned columns).
declare -A TIMER_START=()
E2E_SCENARIO=${E2E_SCENARIO:-}
TIMINGS=()
now_ms() { date +%s%3N; }
timer_start() { TIMER_START[$1]=$(now_ms); }
timer_stop() { timing_add "$1" $(($(now_ms) - TIMER_START[$1])); }
timing_add() {
  local secs
  secs=$(awk -v ms="$2" 'BEGIN { printf "%.1f", ms / 1000 }')
  TIMINGS+=("$(printf '%-10s %-56s %7s s' "${E2E_SCENARIO:--}" "$1" "$secs")")
  log "$1: $secs s"
}
print_timings() {
  [ ${#TIMINGS[@]} -gt 0 ] || return 0
  mkdir -p "$E2E_LOGS"
  {
    echo "e2e timings ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs)"
    printf '%s\n' "${TIMINGS[@]}"
  } | tee "$E2E_LOGS/timings.txt" >&2
}

# image_ref NAME is the reference of our image NAME: the name `make images`
# wrote into $E2E_IMAGES/NAME.tar (the name ctr import gives it).
image_ref() {
  local ref
  ref=$(tar -xOf "$E2E_IMAGES/$1.tar" index.json 2>/dev/null | grep -o '"io.containerd.image.name":"[^"]*"' | cut -d'"' -f4)
  [ -n "$ref" ] || die "$E2E_IMAGES/$1.tar: no image name in its index.json (run make images)"
  echo "$ref"
}

# dump_logs prints the tail of every component log (on failure).
dump_logs() {
  local f
  for f in "$E2E_LOGS"/*.log; do
    [ -f "$f" ] || continue
    echo "----- $(basename "$f") (last 25 lines) -----" >&2
    tail -n 25 "$f" >&2
  done
}

# store_volumes NAME STORE NS makes the hostPath PersistentVolumes of a scenario's store:
# e2e-NAME-cache (ReadWriteMany, STORE/cache: the chart's weights cache claim binds it)
# and e2e-NAME-models (ReadOnlyMany, STORE/models), bound by the claim e2e-models in NS
# that WhisperEncoders name as their pvc source.
store_volumes() {
  local name=$1 store=$2 ns=$3
  kc apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolume
metadata: {name: e2e-$name-cache}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {path: $store/cache, type: Directory}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: e2e-$name-models}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadOnlyMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {path: $store/models, type: Directory}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: e2e-models, namespace: $ns}
spec:
  accessModes: [ReadOnlyMany]
  storageClassName: ""
  volumeName: e2e-$name-models
  resources: {requests: {storage: 1Gi}}
YAML
}
