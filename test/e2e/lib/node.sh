# shellcheck shell=bash
# Bringing the single-node cluster up: network namespace, PKI, configuration,
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd,
# kubelet and kube-proxy, each started by hand and recorded by PID.

# Binaries the node needs from hack/k8s-bins.sh.
K8S_BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
# Binaries the node needs from hack/containerd-bins.sh (containerd 1.7, which applies
# CDI specs; Debian's 1.6 does not). runc and the CNI plugins are Debian's.
CONTAINERD_BINARIES=(containerd containerd-shim-runc-v2 ctr)
# Paths outside $E2E_ROOT and $E2E_RUN that the node's components write to.
# Those absent before `up` are removed by `down`; for the others, `down`
# removes only what belongs to this node.
OUTSIDE_PATHS=(/run/netns /run/containerd /var/lib/cni /var/log/containers /run/xtables.lock /usr/libexec/kubernetes "$E2E_KUBELET_DIR")

# cgroup_setup decides the cgroup driver: systemd when PID 1 is systemd on a
# cgroup v2 host, cgroupfs otherwise (the kubelet and containerd must agree).
cgroup_setup() {
  if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then CGROUP_VERSION=2; else CGROUP_VERSION=1; fi
  if [ "$CGROUP_VERSION" = 2 ] && [ "$(cat /proc/1/comm)" = systemd ]; then
    CGROUP_DRIVER=systemd
    CGROUP_ROOT=/ # the kubelet makes kubepods.slice; systemd owns the rest
  else
    CGROUP_DRIVER=cgroupfs
    CGROUP_ROOT=/$E2E_NAME # everything of this node lives below it, and down removes it
  fi
}

# cgroup_dirs prints the node's cgroup root in every hierarchy (cgroupfs driver).
cgroup_dirs() {
  [ "$CGROUP_DRIVER" = cgroupfs ] || return 0
  if [ "$CGROUP_VERSION" = 2 ]; then echo "/sys/fs/cgroup$CGROUP_ROOT"; return; fi
  local h
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h" ] && [ ! -L "${h%/}" ] && echo "${h%/}$CGROUP_ROOT"
  done
}

# cgroup_make creates the cgroup root the kubelet's cgroupRoot names (the
# kubelet refuses a root that does not exist). cpuset children start empty,
# so they get their parent's CPUs and memory nodes.
cgroup_make() {
  local d
  for d in $(cgroup_dirs); do
    [ "$(basename "$(dirname "$d")")" = unified ] && continue
    mkdir -p "$d"
    if [ -f "$d/cpuset.cpus" ] && [ -z "$(cat "$d/cpuset.cpus")" ]; then
      cat "$(dirname "$d")/cpuset.cpus" >"$d/cpuset.cpus"
      cat "$(dirname "$d")/cpuset.mems" >"$d/cpuset.mems"
    fi
  done
}

# preflight checks everything the node needs before touching the machine.
preflight() {
  [ "$(id -u)" = 0 ] || die "the e2e node needs root (it makes network namespaces, mounts and cgroups)"
  local c missing=()
  for c in runc nsenter setsid ip iptables openssl base64 awk findmnt flock jq mknod; do
    command -v "$c" >/dev/null || missing+=("$c")
  done
  for c in "${CONTAINERD_BINARIES[@]}"; do
    [ -x "$CONTAINERD_BIN/$c" ] || missing+=("$CONTAINERD_BIN/$c")
  done
  for c in bridge host-local portmap loopback; do
    [ -x "$CNI_BIN_DIR/$c" ] || missing+=("$CNI_BIN_DIR/$c")
  done
  for c in "${K8S_BINARIES[@]}"; do
    [ -x "$K8S_BIN/$c" ] || missing+=("$K8S_BIN/$c")
  done
  for c in pause e2e-agent whisper-encoder; do
    [ -f "$E2E_IMAGES/$c.tar" ] || missing+=("$E2E_IMAGES/$c.tar")
  done
  for c in e2e-agent whisper-encoder; do
    [ -x "$E2E_BIN/$c" ] || missing+=("$E2E_BIN/$c")
  done
  [ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]} (run test/e2e/install-deps.sh and make images)"
  if [ -e "$E2E_KUBELET_DIR" ] && [ ! -e "$E2E_KUBELET_DIR/$OWNED" ] && [ -n "$(ls -A "$E2E_KUBELET_DIR")" ]; then
    die "$E2E_KUBELET_DIR exists and was not made by this script (is a real kubelet running here?); set E2E_KUBELET_DIR"
  fi
}

# record_outside_paths notes which of OUTSIDE_PATHS do not exist yet.
record_outside_paths() {
  local p
  : >"$E2E_ROOT/created-paths"
  for p in "${OUTSIDE_PATHS[@]}"; do
    [ -e "$p" ] || echo "$p" >>"$E2E_ROOT/created-paths"
  done
}

# netns_up makes the node's network namespace: loopback and a veth pair whose
# one end has the node IP. There is no default route and no link out: nothing
# inside can reach the machine's own interfaces, and nothing outside can reach in.
netns_up() {
  ip netns add "$E2E_NAME"
  ip -n "$E2E_NAME" link set lo up
  ip -n "$E2E_NAME" link add e2e0 type veth peer name e2e1
  ip -n "$E2E_NAME" addr add "$E2E_NODE_IP/24" dev e2e0
  ip -n "$E2E_NAME" link set e2e0 up
  ip -n "$E2E_NAME" link set e2e1 up
  # Locally made packets need a route before kube-proxy's DNAT can rewrite
  # them: Service IPs go to e2e0 (and so never leave the namespace).
  ip -n "$E2E_NAME" route add "$E2E_SERVICE_CIDR" dev e2e0
  # Pod traffic to Services is DNATed by kube-proxy in this namespace; bridged
  # replies must pass iptables too (per-namespace sysctl since Linux 5.3).
  innet sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward'
  if [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] || modprobe br_netfilter 2>/dev/null; then
    innet sh -c 'echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables' 2>/dev/null ||
      log "warning: cannot enable bridge-nf-call-iptables in $E2E_NAME; pod→Service→same-node traffic may fail"
  fi
}

# write_configs writes the PKI, kubeconfigs and every component's configuration.
write_configs() {
  mkdir -p "$E2E_ROOT"/{etcd,containerd,cni/net.d,cni/ipam,kubelet,pod-logs,volume-plugins} "$E2E_RUN"/runc "$E2E_LOGS" "$E2E_CDI_DIR"
  pki_make
  kubeconfig "$ADMIN_KUBECONFIG" admin
  kubeconfig "$E2E_ROOT/controller-manager.kubeconfig" controller-manager
  kubeconfig "$E2E_ROOT/scheduler.kubeconfig" scheduler
  kubeconfig "$E2E_ROOT/kubelet.kubeconfig" kubelet-client
  kubeconfig "$E2E_ROOT/kube-proxy.kubeconfig" kube-proxy
  write_containerd_config
  write_cni_config
  write_kubelet_config
  write_kube_proxy_config
  echo "# $E2E_NAME: no DNS server; name lookups fail inside the node's network namespace" >"$E2E_ROOT/resolv.conf"
}

write_containerd_config() {
  cat >"$E2E_ROOT/containerd/config.toml" <<TOML
version = 2
root = "$E2E_ROOT/containerd/root"
state = "$E2E_RUN/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$E2E_RUN/containerd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$E2E_ROOT/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$(image_ref pause)"
  # CAP_SYS_RESOURCE may be missing (it is on these VMs): never raise oom_score_adj.
  restrict_oom_score_adj = true
  # Pod network namespaces go below the state dir ($E2E_RUN), not /run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # CDI devices (DRA claims' specs) from our directory only, not the host's /etc/cdi.
  enable_cdi = true
  cdi_spec_dirs = ["$E2E_CDI_DIR"]
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      # Our shim, not a containerd-shim-runc-v2 found first on PATH (Debian's).
      runtime_path = "$CONTAINERD_BIN/containerd-shim-runc-v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = $([ "$CGROUP_DRIVER" = systemd ] && echo true || echo false)
        Root = "$E2E_RUN/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$E2E_ROOT/cni/net.d"
    max_conf_num = 1
TOML
}

write_cni_config() {
  cat >"$E2E_ROOT/cni/net.d/10-$E2E_NAME.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "$E2E_NAME",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$E2E_POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$E2E_ROOT/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
}

write_kubelet_config() {
  cat >"$E2E_ROOT/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $E2E_NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: $CGROUP_DRIVER
cgroupRoot: $CGROUP_ROOT
failCgroupV1: false
failSwapOn: false
clusterDomain: cluster.local
resolvConf: $E2E_ROOT/resolv.conf
podLogsDir: $E2E_ROOT/pod-logs
volumePluginDir: $E2E_ROOT/volume-plugins
maxPods: 32
podPidsLimit: 4096
# Our images are imported, never pulled: keep them, and do not evict on a busy disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, nodefs.inodesFree: 1%, imagefs.available: 1%}
rotateCertificates: false
serverTLSBootstrap: false
YAML
}

write_kube_proxy_config() {
  cat >"$E2E_ROOT/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $E2E_ROOT/kube-proxy.kubeconfig}
hostnameOverride: $E2E_NAME
mode: iptables
clusterCIDR: $E2E_POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# The node's namespace is ours: leave the host-wide conntrack table size alone.
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
}

start_etcd() {
  start_daemon etcd "$K8S_BIN/etcd" --name "$E2E_NAME" --data-dir "$E2E_ROOT/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster "$E2E_NAME=http://127.0.0.1:2380" --listen-metrics-urls http://127.0.0.1:2381 \
    --unsafe-no-fsync --log-level warn
}

start_apiserver() {
  start_daemon kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers http://127.0.0.1:2379 \
    --advertise-address "$E2E_NODE_IP" --secure-port 6443 \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --service-cluster-ip-range "$E2E_SERVICE_CIDR" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP \
    --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key" \
    --allow-privileged=true --profiling=false --v=1
}

start_controller_manager() {
  start_daemon kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$E2E_ROOT/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$E2E_ROOT/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$E2E_ROOT/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --cluster-name "$E2E_NAME" \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --use-service-account-credentials=true --flex-volume-plugin-dir "$E2E_ROOT/volume-plugins" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --profiling=false --v=1
}

start_scheduler() {
  start_daemon kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig "$E2E_ROOT/scheduler.kubeconfig" \
    --authentication-kubeconfig "$E2E_ROOT/scheduler.kubeconfig" \
    --authorization-kubeconfig "$E2E_ROOT/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --profiling=false --v=1
}

# start_containerd starts our containerd, its directory first on PATH so that every
# shim it looks up by name is ours too.
start_containerd() {
  PATH="$CONTAINERD_BIN:$PATH" start_daemon containerd "$CONTAINERD_BIN/containerd" --config "$E2E_ROOT/containerd/config.toml"
}

start_kubelet() {
  start_daemon kubelet "$K8S_BIN/kubelet" \
    --config "$E2E_ROOT/kubelet/config.yaml" --kubeconfig "$E2E_ROOT/kubelet.kubeconfig" \
    --root-dir "$E2E_KUBELET_DIR" --hostname-override "$E2E_NAME" --node-ip "$E2E_NODE_IP" --v=1
}

start_kube_proxy() {
  start_daemon kube-proxy "$K8S_BIN/kube-proxy" --config "$E2E_ROOT/kube-proxy.yaml" --v=1
}

# api_ready: the API server answers /readyz.
api_ready() { kc get --raw /readyz >/dev/null; }

# namespace_gone NS: namespace NS no longer exists.
namespace_gone() { ! kc get namespace "$1" >/dev/null 2>&1; }

# node_ready: the node's Ready condition is True.
node_ready() {
  [ "$(kc get node "$E2E_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

# import_images imports our OCI tarballs into containerd's CRI namespace.
import_images() {
  local tar
  for tar in "$E2E_IMAGES"/*.tar; do
    ctrc images import "$tar" >>"$E2E_LOGS/images.log" 2>&1 ||
      die "ctr images import $tar failed (log: $E2E_LOGS/images.log)"
  done
  local have
  have=$(ctrc images ls -q)
  grep -qx "$(image_ref pause)" <<<"$have" || die "pause image $(image_ref pause) not in containerd after import (it has: $have)"
}

# node_up brings the whole node up from nothing and leaves it running.
node_up() {
  cgroup_setup
  preflight
  if [ -e "$E2E_ROOT" ] || [ -e "$NETNS" ] || [ -e "$E2E_RUN" ]; then
    log "leftovers of an earlier run found; tearing them down first"
    node_down
  fi
  rm -rf "$E2E_LOGS" && mkdir -p "$E2E_ROOT" "$E2E_RUN" "$E2E_LOGS"
  record_outside_paths
  mkdir -p "$E2E_KUBELET_DIR" && touch "$E2E_KUBELET_DIR/$OWNED"
  log "node $E2E_NAME: cgroup v$CGROUP_VERSION, driver $CGROUP_DRIVER, root $CGROUP_ROOT; netns $E2E_NAME, node IP $E2E_NODE_IP"

  timer_start "node up (nothing -> node Ready)"
  netns_up
  cgroup_make
  write_configs
  start_etcd
  start_containerd
  wait_for "etcd health" 60 agent get -timeout 2s http://127.0.0.1:2381/health
  start_apiserver
  wait_for "containerd" 30 ctrc version

  timer_start "images import"
  import_images
  timer_stop "images import"

  wait_for "kube-apiserver /readyz" "$E2E_TIMEOUT" api_ready
  # The API server reaches the kubelet (logs, exec) as this user.
  kc create clusterrolebinding "$E2E_NAME-apiserver-kubelet" --clusterrole system:kubelet-api-admin \
    --user kube-apiserver-kubelet-client >/dev/null
  start_controller_manager
  start_scheduler
  start_kubelet
  start_kube_proxy
  wait_for "node $E2E_NAME Ready" "$E2E_TIMEOUT" node_ready
  wait_for "service account default/default" 60 kc -n default get serviceaccount default
  timer_stop "node up (nothing -> node Ready)"
}

# kubelet_restart stops the kubelet by PID, starts it again, and waits until
# it has reported the node Ready after the restart and knows the node's pods.
kubelet_restart() {
  local before
  before=$(utc_now)
  # Heartbeats have one-second resolution: restart in a later second than $before.
  wait_for "the clock to pass $before" 5 clock_past "$before"
  stop_daemon kubelet
  start_kubelet
  wait_for "kubelet /healthz after restart" 60 agent get -timeout 2s http://127.0.0.1:10248/healthz
  wait_for "node $E2E_NAME Ready after the kubelet restart" "$E2E_TIMEOUT" node_ready_since "$before"
  wait_for "the restarted kubelet to know the node's pods" "$E2E_TIMEOUT" kubelet_has_pods
}

# kubelet_has_pods: the kubelet's pod manager (its /pods, read through the API
# server's node proxy) holds every pod the API server has bound to the node and
# that has not finished. A restarted kubelet reports the node Ready before it has
# synced its pods; until then exec, logs and attach to them fail with "pod does
# not exist".
kubelet_has_pods() {
  local want have uid
  want=$(kc get pods --all-namespaces --field-selector "spec.nodeName=$E2E_NAME,status.phase!=Succeeded,status.phase!=Failed" \
    -o jsonpath='{range .items[*]}{.metadata.uid}{"\n"}{end}') || return 1
  have=$(kc get --raw "/api/v1/nodes/$E2E_NAME/proxy/pods" | jq -r '.items[].metadata.uid') || return 1
  for uid in $want; do
    grep -qxF "$uid" <<<"$have" || return 1
  done
}

# node_ready_since TIME: Ready is True with a heartbeat later than TIME.
node_ready_since() {
  local hb
  node_ready || return 1
  hb=$(kc get node "$E2E_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].lastHeartbeatTime}')
  [[ "$hb" > "$1" ]]
}
