#!/usr/bin/env bash
# The end-to-end test on a real single-node Kubernetes, built from nothing on
# this machine: no Docker, no image registry, no network beyond namespaces it
# creates itself (see lib/common.sh).
#
#   test/e2e/e2e.sh run [SCENARIO...]  up, scenarios (default: smoke whisper transcribe dra autoscale), down; prints timings
#   test/e2e/e2e.sh up                 bring the node up and leave it running
#   test/e2e/e2e.sh down               tear it down (idempotent; fails if anything is left)
#   test/e2e/e2e.sh restart-kubelet    stop and start the kubelet, wait for node Ready
#   test/e2e/e2e.sh kubectl ARGS...    kubectl as cluster admin against the node
#   test/e2e/e2e.sh status             the node's processes and objects
#
# Scenarios are files scenarios/NAME.sh defining a function scenario_NAME; they
# run in order against the same node, using the helpers of lib/*.sh.
# Needs root and `make images` (bin/images, bin/e2e-agent, bin/whisper-encoder, or
# the same under E2E_BIN); `run` installs the rest (test/e2e/install-deps.sh), the
# other commands expect it installed. run, up and down hold a lock: runs from other
# checkouts on this machine wait for each other.
# Settings: the E2E_* variables in lib/common.sh.
set -euo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "$0")/lib/common.sh"
# shellcheck source=lib/proc.sh
source "$E2E_DIR/lib/proc.sh"
# shellcheck source=lib/pki.sh
source "$E2E_DIR/lib/pki.sh"
# shellcheck source=lib/node.sh
source "$E2E_DIR/lib/node.sh"
# shellcheck source=lib/teardown.sh
source "$E2E_DIR/lib/teardown.sh"
# shellcheck source=lib/fakenpu.sh
source "$E2E_DIR/lib/fakenpu.sh"

# k8s_bins builds (or finds cached) the Kubernetes and containerd binaries and
# sets K8S_BIN and CONTAINERD_BIN.
k8s_bins() {
  K8S_BIN=$("$REPO_ROOT/hack/k8s-bins.sh" "${K8S_BINARIES[@]}")
  CONTAINERD_BIN=$("$REPO_ROOT/hack/containerd-bins.sh")
}

# install_deps installs the Debian packages if missing, builds (or finds
# cached) the Kubernetes and containerd binaries, and sets K8S_BIN and CONTAINERD_BIN.
install_deps() {
  K8S_BIN=$("$E2E_DIR/install-deps.sh")
  CONTAINERD_BIN=$("$REPO_ROOT/hack/containerd-bins.sh") # built by install-deps.sh: a cache hit
}

# run_scenarios sources and runs each scenario against the running node.
run_scenarios() {
  local s
  for s in "$@"; do
    [ -f "$E2E_DIR/scenarios/$s.sh" ] || die "no scenario $s (have: $(cd "$E2E_DIR/scenarios" && ls -- *.sh | sed 's/\.sh$//' | tr '\n' ' '))"
    # shellcheck source=/dev/null
    source "$E2E_DIR/scenarios/$s.sh"
    log "scenario $s"
    E2E_SCENARIO=$s
    timer_start "scenario $s (whole)"
    "scenario_${s//-/_}"
    timer_stop "scenario $s (whole)"
    log "scenario $s passed"
  done
}

cmd_run() {
  local scenarios=("$@")
  [ ${#scenarios[@]} -gt 0 ] || scenarios=(smoke whisper transcribe dra autoscale)
  # make e2e says how long it took to build the images (before this script ran).
  [ -z "${E2E_IMAGES_BUILD_MS:-}" ] || timing_add "images build (make images)" "$E2E_IMAGES_BUILD_MS"
  timer_start "dependencies (apt, k8s and containerd binaries)"
  install_deps
  timer_stop "dependencies (apt, k8s and containerd binaries)"
  node_up
  run_scenarios "${scenarios[@]}"
  timer_start "teardown"
  node_down
  timer_stop "teardown"
  print_timings
}

# on_run_exit cleans up after a failed run: logs, teardown, timings so far.
on_run_exit() {
  local rc=$?
  trap - EXIT
  if [ "$rc" -ne 0 ]; then
    log "run failed (status $rc); component logs:"
    dump_logs
    log "tearing down after the failure"
    node_down || true
    print_timings
  fi
  exit "$rc"
}

main() {
  local cmd=${1:-}
  shift || true
  case "$cmd" in
    run)
      node_lock
      trap on_run_exit EXIT # whatever happens, leave nothing behind
      cmd_run "$@"
      ;;
    up) node_lock && install_deps && node_up && print_timings && log "node is up; kubectl: test/e2e/e2e.sh kubectl ...; stop: test/e2e/e2e.sh down" ;;
    down) node_lock && k8s_bins && node_down ;;
    restart-kubelet)
      k8s_bins
      timer_start "kubelet restart -> node Ready"
      kubelet_restart
      timer_stop "kubelet restart -> node Ready"
      ;;
    kubectl) k8s_bins && kc "$@" ;;
    status)
      k8s_bins
      local n
      for n in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy; do
        printf '%-24s %s\n' "$n" "$(daemon_pid "$n" || echo stopped)"
      done
      kc get nodes,pods -A -o wide 2>/dev/null || true
      ;;
    *)
      sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2
      exit 2
      ;;
  esac
}

main "$@"
