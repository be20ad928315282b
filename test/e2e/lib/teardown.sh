# shellcheck shell=bash
# Tearing the node down so that nothing of it is left: workloads through the
# API (so the kubelet stops sandboxes and CNI releases their addresses), then
# processes by PID, mounts, the network namespace (with its bridge, veths and
# iptables rules), cgroups and state directories. Idempotent; it also cleans up
# after a run that died half-way.

# delete_workloads deletes every test namespace and every pod through the API
# and waits until the kubelet has stopped them all.
delete_workloads() {
  local ns
  for ns in $(kc get namespaces -o jsonpath='{.items[*].metadata.name}'); do
    case "$ns" in default | kube-system | kube-public | kube-node-lease) ;; *) kc delete namespace "$ns" --wait=false >/dev/null ;; esac
  done
  kc delete daemonsets,deployments,statefulsets,replicasets,jobs,cronjobs --all --all-namespaces --wait=false >/dev/null 2>&1 || true
  kc delete pods --all --all-namespaces --wait=false >/dev/null 2>&1 || true
  wait_for "every pod deleted" 120 no_pods_left || log "warning: pods remain after 120s; removing their containers directly"
}

no_pods_left() { [ -z "$(kc get pods --all-namespaces -o name 2>/dev/null)" ]; }

# remove_containers kills and deletes whatever containerd still runs, so
# that the shims exit.
remove_containers() {
  local id
  for id in $(ctrc tasks ls -q 2>/dev/null); do ctrc tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
  for id in $(ctrc tasks ls -q 2>/dev/null); do ctrc tasks delete -f "$id" >/dev/null 2>&1 || true; done
  for id in $(ctrc containers ls -q 2>/dev/null); do ctrc containers delete "$id" >/dev/null 2>&1 || true; done
}

# node_netns_pids prints every process in the node's network namespace (our
# daemons and containerd's shims, even those whose PID files are lost).
node_netns_pids() {
  local p
  [ -e "$NETNS" ] || return 0
  for p in /proc/[0-9]*; do
    # -ef compares device and inode without a fork per process.
    [ "$p/ns/net" -ef "$NETNS" ] 2>/dev/null && echo "${p#/proc/}"
  done
  return 0
}

# node_cgroup_pids prints every process in the node's cgroups (containers).
node_cgroup_pids() {
  local d
  for d in $(cgroup_dirs); do
    [ -d "$d" ] && find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -un
}

# kill_leftovers ends, by PID, every process still in the node's cgroups or netns.
kill_leftovers() {
  local pid
  for pid in $(node_cgroup_pids); do
    log "killing container process $pid ($(tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | cut -c1-80))"
    kill -KILL "$pid" 2>/dev/null || true
  done
  for pid in $(node_netns_pids); do
    log "stopping leftover process $pid in netns $E2E_NAME ($(tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | cut -c1-80))"
    stop_pid "$pid" 5
  done
}

# node_mounts prints every mount point under the node's directories, deepest first.
node_mounts() {
  local d re=""
  for d in "$E2E_ROOT" "$E2E_RUN" "$E2E_KUBELET_DIR"; do re="$re|^$d(/|\$)"; done
  findmnt -rn -o TARGET | grep -E "${re#|}" | sort -r -u || true
}

# unmount_all unmounts everything under the node's directories.
unmount_all() {
  local m tries=0
  while [ -n "$(node_mounts)" ] && ((tries++ < 5)); do
    for m in $(node_mounts); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  done
}

# remove_cgroups removes the node's cgroup trees, leaves first.
remove_cgroups() {
  local d
  for d in $(cgroup_dirs); do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  return 0
}

# remove_outside_paths removes what the node left outside its own directories:
# whole paths that did not exist before `up`, else only this node's entries.
remove_outside_paths() {
  local p l
  rm -f /var/lib/cni/results/"$E2E_NAME"-* 2>/dev/null || true
  for l in /var/log/containers/*.log; do
    [ -L "$l" ] && [[ "$(readlink "$l")" == "$E2E_ROOT/"* ]] && rm -f "$l"
  done
  for p in "${CREATED_PATHS[@]}"; do
    case "$p" in
      /run/netns) # ip netns made it a mount point; other namespaces may live there now
        if [ -z "$(ls -A /run/netns 2>/dev/null)" ]; then
          umount /run/netns 2>/dev/null || true
          rmdir /run/netns 2>/dev/null || true
        fi
        ;;
      "$E2E_KUBELET_DIR") ;;                             # below, by its marker
      *) rm -rf "$p" ;;
    esac
  done
  if [ -e "$E2E_KUBELET_DIR/$OWNED" ]; then rm -rf "$E2E_KUBELET_DIR"; fi
}

# leftovers lists what of the node is still there (nothing after a clean teardown).
leftovers() {
  [ -e "$NETNS" ] && echo "network namespace $NETNS"
  local pid
  for pid in $(node_netns_pids) $(node_cgroup_pids); do echo "process $pid"; done
  node_mounts | sed 's/^/mount /'
  local d
  for d in $(cgroup_dirs); do [ -e "$d" ] && echo "cgroup $d"; done
  for d in "$E2E_ROOT" "$E2E_RUN"; do [ -e "$d" ] && echo "directory $d"; done
  [ -e "$E2E_KUBELET_DIR/$OWNED" ] && echo "directory $E2E_KUBELET_DIR"
  for d in "${CREATED_PATHS[@]}"; do
    [ "$d" = /run/netns ] && [ -n "$(ls -A /run/netns 2>/dev/null)" ] && continue # others' namespaces
    [ -e "$d" ] && echo "$d (made by this node)"
  done
  return 0
}

# node_down tears the node down and fails if anything of it is left.
node_down() {
  cgroup_setup
  CREATED_PATHS=()
  [ -f "$E2E_ROOT/created-paths" ] && mapfile -t CREATED_PATHS <"$E2E_ROOT/created-paths"
  if daemon_pid kube-apiserver >/dev/null && daemon_pid kubelet >/dev/null && api_ready 2>/dev/null; then
    delete_workloads
  fi
  # The autoscale scenario's Prometheus and KEDA, if a failure left them running.
  stop_daemons keda-adapter keda-operator prometheus
  stop_daemons kube-proxy kubelet
  if daemon_pid containerd >/dev/null; then remove_containers; fi
  stop_daemons containerd kube-scheduler kube-controller-manager kube-apiserver
  stop_daemons etcd
  log "teardown: daemons stopped"
  kill_leftovers
  log "teardown: leftover processes handled"
  unmount_all
  log "teardown: unmounted"
  [ -e "$NETNS" ] && ip netns delete "$E2E_NAME"
  remove_cgroups
  log "teardown: netns and cgroups removed"
  remove_outside_paths
  rm -rf "$E2E_ROOT" "$E2E_RUN"
  log "teardown: directories removed"
  local left
  left=$(leftovers)
  if [ -n "$left" ]; then
    log "teardown left behind:"
    echo "$left" >&2
    return 1
  fi
  log "teardown complete: no process, mount, cgroup, netns or state directory of $E2E_NAME is left"
}
