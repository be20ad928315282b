# shellcheck shell=bash
# Dynamic Resource Allocation on the real node (issue 16): `helm install` of our chart
# with xdna-dra-driver instead of the device plugin; the fake XDNA1 NPU (lib/fakenpu.sh)
# published in a ResourceSlice with its attributes and 6 hardware contexts as
# consumable capacity; three pods claiming 2 contexts each share the one NPU and a
# fourth stays Pending with the scheduler's reason until one of them goes; a
# WhisperEncoder with npu.allocation dra gets its claim; and faults: the kubelet
# restarted, the device node removed and restored, the driver's pod restarted — the
# slice and the claims stay true throughout. Everything it made is gone at the end.
#
# The node runs the kubelet, kube-scheduler and kube-apiserver with their default
# feature gates (resource.k8s.io/v1, consumable capacity and device taints are on).
# The driver writes a CDI spec per claim to $E2E_CDI_DIR, the one CDI directory of the
# node's containerd 1.7 (hack/containerd-bins.sh): the scenario checks each spec, the
# OCI spec containerd ran (device node, device cgroup rule, environment) and, through
# kubectl exec of e2e-agent inspect, what the container itself sees.
#
#   E2E_SCENARIOS=dra make e2e

D_NS=xdna-dra
D_RELEASE=xdna-dra
D_STORE=$E2E_ROOT/dra-volumes
D_CDI=$E2E_CDI_DIR
D_DRIVER=npu.amd.com
D_DEVICE=npu-${FAKE_NPU_PCI//[:.]/-}
D_MODEL=whisper-demo.onnx

# dkc is kubectl in the scenario's namespace; djp KIND/NAME JSONPATH prints one field.
dkc() { kc -n "$D_NS" "$@"; }
djp() { dkc get "$1" -o jsonpath="$2"; }

# dra_helm runs helm inside the node's network namespace as the cluster admin.
dra_helm() {
  innet env HELM_CONFIG_HOME="$E2E_RUN/helm/config" HELM_CACHE_HOME="$E2E_RUN/helm/cache" \
    HELM_DATA_HOME="$E2E_RUN/helm/data" "$HELM_BIN" --kubeconfig "$ADMIN_KUBECONFIG" "$@"
}

scenario_dra() {
  HELM_BIN=$("$REPO_ROOT/hack/helm.sh")
  dra_install
  dra_slice_published
  dra_share_by_contexts
  dra_kubelet_restart
  dra_device_removed
  dra_plugin_restart
  dra_whisper_encoder
  dra_uninstall
}

# --- 1. helm install with the DRA driver -------------------------------------------------

# dra_image NAME prints the chart's image block for our imported image NAME.
dra_image() {
  local ref
  ref=$(image_ref "$1")
  echo "{repository: ${ref%:*}, tag: \"${ref##*:}\", pullPolicy: Never}"
}

dra_install() {
  # A scenario before this one may have left its fake NPU (same tree, same PCI address).
  rm -rf "$FAKE_NPU_ROOT"
  fake_npu_make
  mkdir -p "$D_STORE/cache" "$D_STORE/models" "$E2E_RUN/helm" "$D_CDI"
  chown 65532:65532 "$D_STORE/cache"
  install -m 0644 "$REPO_ROOT/encoder/bundled/$D_MODEL" "$D_STORE/models/$D_MODEL"
  kc create namespace "$D_NS" >/dev/null
  # The driver mounts host paths: the namespace must allow "privileged".
  kc label namespace "$D_NS" pod-security.kubernetes.io/enforce=privileged >/dev/null
  wait_for "service account $D_NS/default" 60 dkc get serviceaccount default
  # What NFD's rule would put on an XDNA1 node; the driver's DaemonSet is placed by it.
  kc label node "$E2E_NAME" feature.node.kubernetes.io/pci-1180_1022_1502.present=true >/dev/null
  store_volumes dra "$D_STORE" "$D_NS"
  cat >"$E2E_RUN/helm/dra-values.yaml" <<YAML
operator:
  image: $(dra_image whisper-operator)
encoder:
  image: $(dra_image whisper-encoder)
devicePlugin:
  enabled: false
draDriver:
  enabled: true
  image: $(dra_image xdna-dra-driver)
  kubeletDir: $E2E_KUBELET_DIR
  cdiDir: $D_CDI
  hostPaths: {sys: $FAKE_NPU_ROOT/sys, dev: $FAKE_NPU_ROOT/dev}
cache: {storageClassName: "-", volumeName: e2e-dra-cache, size: 1Gi}
nodeFeatureRule: {create: false}
YAML
  timer_start "helm install (DRA) -> driver Ready"
  dra_helm install "$D_RELEASE" "$REPO_ROOT/charts/xdna-whisper" -n "$D_NS" -f "$E2E_RUN/helm/dra-values.yaml" \
    >"$E2E_LOGS/helm-dra.log" 2>&1 || { cat "$E2E_LOGS/helm-dra.log" >&2; die "helm install with draDriver failed"; }
  wait_for "DRA driver pod Ready" "$E2E_TIMEOUT" dra_driver_ready ||
    { dkc get pods -o wide >&2; dkc describe pods -l app.kubernetes.io/component=dra-driver >&2; die "the DRA driver did not become ready"; }
  timer_stop "helm install (DRA) -> driver Ready"
  [ -z "$(dkc get daemonsets -l app.kubernetes.io/component=device-plugin -o name)" ] ||
    die "devicePlugin.enabled=false still installed the device plugin"
  [ "$(kc get deviceclass "$D_DRIVER" -o jsonpath='{.spec.selectors[0].cel.expression}')" = "device.driver == \"$D_DRIVER\"" ] ||
    die "DeviceClass $D_DRIVER: $(kc get deviceclass "$D_DRIVER" -o yaml 2>&1)"
}

# dra_driver_pod prints the name of the driver's pod.
dra_driver_pod() { dkc get pods -l app.kubernetes.io/component=dra-driver -o jsonpath='{.items[0].metadata.name}'; }

# dra_driver_ready: exactly one driver pod, Running and Ready, not being deleted.
dra_driver_ready() {
  [ "$(dkc get pods -l app.kubernetes.io/component=dra-driver \
    -o jsonpath='{range .items[*]}{.status.phase} {.status.conditions[?(@.type=="Ready")].status} {.metadata.deletionTimestamp}{"\n"}{end}')" = "Running True " ]
}

# --- 2. the fake NPU in a ResourceSlice ---------------------------------------------------

# dra_device prints the node's NPU as the driver's ResourceSlices publish it (JSON), and
# fails unless exactly one slice of the driver for the node holds exactly one device.
dra_device() {
  kc get resourceslices -o json | jq -ce --arg d "$D_DRIVER" --arg n "$E2E_NAME" '
    [.items[] | select(.spec.driver == $d and .spec.nodeName == $n)] as $s
    | select(($s | length) == 1 and ($s[0].spec.devices | length) == 1) | $s[0].spec.devices[0]'
}

# dra_device_is JQ: the published device satisfies the jq expression JQ.
dra_device_is() { dra_device | jq -e "$1" >/dev/null; }

# D_HEALTHY is a device as the fake NPU must appear: its attributes from sysfs, 6
# contexts, shareable, no taint. aieColumns is absent: only the amdxdna driver's
# GET_INFO answers it, and the fake device node has no driver behind it.
D_HEALTHY='.name == "'$D_DEVICE'"
  and .attributes.family.string == "xdna1"
  and .attributes.pciDeviceID.string == "0x1502"
  and .attributes["resource.kubernetes.io/pciBusID"].string == "'$FAKE_NPU_PCI'"
  and .attributes.firmwareVersion.string == "'$FAKE_NPU_FIRMWARE'"
  and .attributes.vbnv.string == "RyzenAI-npu1"
  and (.attributes | has("aieColumns") | not)
  and .capacity.contexts.value == "6"
  and .allowMultipleAllocations == true
  and ((.taints // []) | length) == 0'

dra_slice_published() {
  timer_start "DRA driver Ready -> NPU in a ResourceSlice"
  wait_for "ResourceSlice of $D_DRIVER on $E2E_NAME with $D_DEVICE" "$E2E_TIMEOUT" dra_device_is "$D_HEALTHY" ||
    { kc get resourceslices -o yaml >&2; dkc logs "pod/$(dra_driver_pod)" >&2 || true; die "the fake NPU is not published as wanted"; }
  timer_stop "DRA driver Ready -> NPU in a ResourceSlice"
  log "ResourceSlice: $(dra_device | jq -c '{name, attributes: (.attributes | map_values(.string // .int // .version)), contexts: .capacity.contexts.value}')"
}

# --- 3. three pods share the NPU by contexts; a fourth waits ------------------------------

# dra_pod NAME prints a pod running our e2e-agent that claims 2 contexts of an NPU.
dra_pod() {
  cat <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: $D_NS, labels: {app: dra-ctx}}
spec:
  terminationGracePeriodSeconds: 1
  # No Service variables: the release's Services would add XDNA_DRA_* to the environment.
  enableServiceLinks: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: {type: RuntimeDefault}}
  resourceClaims: [{name: npu, resourceClaimTemplateName: two-contexts}]
  containers:
    - name: agent
      image: $(image_ref e2e-agent)
      imagePullPolicy: Never
      args: [serve, -listen, ":8080", -dir, /]
      resources: {claims: [{name: npu}]}
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
YAML
}

# pod_running POD: POD is Running with its container ready.
pod_running() { [ "$(djp "pod/$1" '{.status.phase} {.status.containerStatuses[0].ready}')" = "Running true" ]; }

# pod_gone POD: POD no longer exists.
pod_gone() { ! dkc get pod "$1" >/dev/null 2>&1; }

# pod_claim POD prints the name of the ResourceClaim made for POD's claim npu.
pod_claim() { djp "pod/$1" '{.status.resourceClaimStatuses[?(@.name=="npu")].resourceClaimName}'; }

# claim_holds POD: POD's claim is allocated 2 contexts of the node's NPU and reserved for POD.
claim_holds() {
  local c
  c=$(pod_claim "$1") && [ -n "$c" ] || return 1
  dkc get resourceclaim "$c" -o json | jq -e --arg p "$1" --arg dev "$D_DEVICE" --arg drv "$D_DRIVER" --arg n "$E2E_NAME" '
    .status.allocation.devices.results as $r
    | ($r | length) == 1 and $r[0].driver == $drv and $r[0].pool == $n and $r[0].device == $dev
    and $r[0].consumedCapacity.contexts == "2" and ($r[0].shareID // "") != ""
    and ([.status.reservedFor[]?.name] == [$p])' >/dev/null
}

# cdi_spec POD prints the CDI spec the driver wrote for POD's claim.
cdi_spec() {
  local uid
  uid=$(dkc get resourceclaim "$(pod_claim "$1")" -o jsonpath='{.metadata.uid}') && [ -n "$uid" ] || return 1
  cat "$D_CDI/$D_DRIVER-claim-$uid.json"
}

# cdi_specs prints how many claim specs the driver has in the CDI directory.
cdi_specs() { find "$D_CDI" -maxdepth 1 -name "$D_DRIVER-claim-*.json" | wc -l; }
cdi_specs_are() { [ "$(cdi_specs)" = "$1" ]; }

# host_node prints the fake device node's mode, owner and group as JSON, e.g.
# {"mode":"0600","uid":0,"gid":0}: what the container's node must mirror.
host_node() {
  local m u g
  read -r m u g < <(stat -c '%a %u %g' "$FAKE_NPU_ROOT/dev/accel/accel0") || return 1
  jq -cn --arg m "$(printf '%04d' "$m")" --argjson u "$u" --argjson g "$g" '{mode: $m, uid: $u, gid: $g}'
}

# dra_check_prepared POD: the driver prepared POD's claim — its CDI spec names the fake
# device node, mirrors its mode, owner and group (host_node), and sets the XDNA_*
# environment — and containerd applied that spec: the OCI spec it ran for POD's
# container has the device node (c 261:0) with that mode, owner and group, a device
# cgroup rule allowing it, and every variable of the spec.
dra_check_prepared() {
  local spec host
  spec=$(cdi_spec "$1") || die "no CDI spec in $D_CDI for $1's claim $(pod_claim "$1") (have: $(ls "$D_CDI"))"
  host=$(host_node) || die "cannot stat the fake device node"
  jq -e --arg host "$FAKE_NPU_ROOT/dev/accel/accel0" --arg pci "$FAKE_NPU_PCI" --argjson n "$host" --argjson major "$ACCEL_MAJOR" '
    .kind == "npu.amd.com/npu" and (.devices | length) == 1
    and (.devices[0].containerEdits.deviceNodes[0] | .path == "/dev/accel/accel0" and .hostPath == $host
         and .type == "c" and .major == $major and .minor == 0
         and .fileMode == ($n.mode | explode | map(. - 48) | reduce .[] as $d (0; . * 8 + $d))
         and .uid == $n.uid and .gid == $n.gid)
    and (.devices[0].containerEdits.env | index("XDNA_DEVICES=/dev/accel/accel0") and index("XDNA_PCI_ADDRESSES=" + $pci)
         and index("XDNA_CONTEXTS=2") and index("XDNA_MEMLOCK_BYTES=67108864"))' <<<"$spec" >/dev/null ||
    die "$1's CDI spec: $spec"
  local oci
  oci=$(container_spec "$1") || die "no container of $1 in containerd (status: $(djp "pod/$1" '{.status.containerStatuses}'))"
  jq -e --argjson cdi "$spec" --argjson major "$ACCEL_MAJOR" '
    . as $oci | $cdi.devices[0].containerEdits as $e
    | all($e.deviceNodes[]; . as $n | any($oci.linux.devices[]?; .path == $n.path and .type == "c" and .major == $major and .minor == 0
        and .fileMode == $n.fileMode and .uid == $n.uid and .gid == $n.gid))
    and any(.linux.resources.devices[]?; .allow and .type == "c" and .major == $major and .minor == 0 and (.access | contains("rw")))
    and all($e.env[]; . as $v | any($oci.process.env[]; . == $v))' <<<"$oci" >/dev/null ||
    die "containerd did not apply $1's CDI spec $(jq -c .devices[0].containerEdits <<<"$spec"): it ran $(jq -c '{devices: .linux.devices, rules: .linux.resources.devices, env: .process.env}' <<<"$oci")"
}

# container_spec POD prints the OCI spec containerd runs POD's (first) container with.
container_spec() {
  local id
  id=$(djp "pod/$1" '{.status.containerStatuses[0].containerID}') && [ -n "$id" ] || return 1
  ctrc containers info "${id#containerd://}" | jq -ce .Spec
}

# dra_check_inside POD: inside POD's container (e2e-agent inspect, through kubectl exec)
# /dev/accel/accel0 is the NPU's character device with the host node's mode, owner and
# group (host_node: not runc's default 0666) and the XDNA_* environment is exactly
# the claim's CDI spec's, XDNA_MEMLOCK_BYTES included. CDI cannot raise RLIMIT_MEMLOCK:
# the limit and CAP_IPC_LOCK are logged (XRT needs one of them; these test pods do not).
dra_check_inside() {
  local spec seen host
  spec=$(cdi_spec "$1") || die "no CDI spec in $D_CDI for $1's claim"
  host=$(host_node) || die "cannot stat the fake device node"
  seen=$(dkc exec "$1" -c agent -- /usr/local/bin/e2e-agent inspect /dev/accel/accel0) ||
    die "e2e-agent inspect in $1 failed: $seen"
  jq -e --argjson cdi "$spec" --argjson major "$ACCEL_MAJOR" --argjson n "$host" '
    ($cdi.devices[0].containerEdits.env | map(capture("^(?<key>[^=]*)=(?<value>.*)$")) | from_entries) as $want
    | .env == $want and .env.XDNA_MEMLOCK_BYTES == "67108864"
    and .paths == [{path: "/dev/accel/accel0", type: "char", mode: $n.mode, uid: $n.uid, gid: $n.gid, major: $major, minor: 0}]' <<<"$seen" >/dev/null ||
    die "$1's container does not see what its CDI spec $(jq -c .devices[0].containerEdits <<<"$spec") promises (host node $host): $(jq -c . <<<"$seen")"
  log "$1 sees: $(jq -c '{dev: (.paths[0] | "\(.type) \(.major):\(.minor) \(.mode) \(.uid):\(.gid)"), env, memlockSoft, capIPCLock}' <<<"$seen")"
}

# pod_unschedulable_for_claims POD: the scheduler left POD Pending because its claim
# cannot be allocated.
pod_unschedulable_for_claims() {
  [ "$(djp "pod/$1" '{.status.phase} {.status.conditions[?(@.type=="PodScheduled")].reason}')" = "Pending Unschedulable" ] &&
    djp "pod/$1" '{.status.conditions[?(@.type=="PodScheduled")].message}' | grep -q "cannot allocate all claims"
}

dra_share_by_contexts() {
  kc apply -f - >/dev/null <<YAML
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {name: two-contexts, namespace: $D_NS}
spec:
  spec:
    devices:
      requests:
        - name: npu
          exactly:
            deviceClassName: $D_DRIVER
            capacity: {requests: {contexts: "2"}}
YAML
  local p
  timer_start "3 pods claiming 2 of 6 contexts -> Running"
  for p in ctx-1 ctx-2 ctx-3; do dra_pod "$p" | kc apply -f - >/dev/null; done
  for p in ctx-1 ctx-2 ctx-3; do
    wait_for "pod $p Running" "$E2E_TIMEOUT" pod_running "$p" || { dkc describe pod "$p" >&2; die "pod $p did not run on the shared NPU"; }
  done
  timer_stop "3 pods claiming 2 of 6 contexts -> Running"
  for p in ctx-1 ctx-2 ctx-3; do
    claim_holds "$p" || die "$p's claim: $(dkc get resourceclaim "$(pod_claim "$p")" -o json | jq -c .status)"
    dra_check_prepared "$p"
    dra_check_inside "$p"
  done
  [ "$(dkc get resourceclaims -o json | jq '[.items[].status.allocation.devices.results[0].shareID] | unique | length')" = 3 ] ||
    die "the three claims do not hold three distinct shares of $D_DEVICE"

  dra_pod ctx-4 | kc apply -f - >/dev/null
  wait_for "pod ctx-4 Pending: its claim cannot be allocated" "$E2E_TIMEOUT" pod_unschedulable_for_claims ctx-4 ||
    { dkc describe pod ctx-4 >&2; die "the fourth pod was not refused by the scheduler"; }
  log "ctx-4 Pending: $(djp pod/ctx-4 '{.status.conditions[?(@.type=="PodScheduled")].message}')"
  [ -z "$(djp pod/ctx-4 '{.spec.nodeName}')" ] || die "ctx-4 was bound to a node with its NPU full"

  # Freeing 2 contexts lets it run: the capacity is really consumed and released.
  timer_start "pod holding 2 contexts deleted -> Pending pod Running"
  dkc delete pod ctx-1 --wait=false >/dev/null
  wait_for "pod ctx-4 Running after ctx-1 went" "$E2E_TIMEOUT" pod_running ctx-4 ||
    { dkc describe pod ctx-4 >&2; die "ctx-4 did not get the contexts ctx-1 gave back"; }
  timer_stop "pod holding 2 contexts deleted -> Pending pod Running"
  claim_holds ctx-4 || die "ctx-4's claim: $(dkc get resourceclaim "$(pod_claim ctx-4)" -o json | jq -c .status)"
  dra_check_prepared ctx-4
  dra_check_inside ctx-4
  wait_for "ctx-1 gone and its claim unprepared" "$E2E_TIMEOUT" pods_and_specs 3 ||
    die "after ctx-1 went: $(dkc get pods -l app=dra-ctx -o name | tr '\n' ' ') and $(cdi_specs) CDI specs, want 3 of each"
}

# pods_and_specs N: N dra-ctx pods exist and the driver holds N prepared claims' specs.
pods_and_specs() {
  [ "$(dkc get pods -l app=dra-ctx -o name | grep -c .)" = "$1" ] && cdi_specs_are "$1"
}

# dra_claims_true: the pods ctx-2..4 still run with their claims allocated, reserved
# and prepared, and the slice publishes the NPU healthy.
dra_claims_true() {
  local p
  for p in ctx-2 ctx-3 ctx-4; do
    pod_running "$p" && claim_holds "$p" && cdi_spec "$p" >/dev/null || return 1
  done
  dra_device_is "$D_HEALTHY"
}

# all_running POD...: every POD is Running with its container ready.
all_running() {
  local p
  for p in "$@"; do pod_running "$p" || return 1; done
}

# dra_slice_id prints the driver's slice as "name uid pool-generation".
dra_slice_id() {
  kc get resourceslices -o json | jq -r --arg d "$D_DRIVER" '.items[] | select(.spec.driver == $d) | "\(.metadata.name) \(.metadata.uid) \(.spec.pool.generation)"'
}

# dra_containers lists the claim pods' containers and restart counts.
dra_containers() {
  dkc get pods -l app=dra-ctx -o jsonpath='{range .items[*]}{.metadata.name} {.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount}{"\n"}{end}'
}

# --- 4. faults ---------------------------------------------------------------------------

# dra_kubelet_restart: the kubelet restarts; running claim pods are left alone, the
# driver registers again, and a new claim is prepared by it.
dra_kubelet_restart() {
  local before slice_before
  before=$(dra_containers)
  slice_before=$(dra_slice_id)
  timer_start "kubelet restart -> node Ready (DRA)"
  kubelet_restart
  timer_stop "kubelet restart -> node Ready (DRA)"
  timer_start "node Ready -> claims, pods and slice checked true"
  wait_for "claim pods Running after the kubelet restart" "$E2E_TIMEOUT" all_running ctx-2 ctx-3 ctx-4 ||
    die "claim pods after the kubelet restart: $(dkc get pods -l app=dra-ctx -o wide 2>&1)"
  timing_add "node Ready -> claim pods Running" $(($(now_ms) - TIMER_START["node Ready -> claims, pods and slice checked true"]))
  wait_for "slice healthy after the kubelet restart" "$E2E_TIMEOUT" dra_device_is "$D_HEALTHY" ||
    die "after the kubelet restart: $(dra_device)"
  timing_add "node Ready -> slice true" $(($(now_ms) - TIMER_START["node Ready -> claims, pods and slice checked true"]))
  wait_for "claims and slice true after the kubelet restart" "$E2E_TIMEOUT" dra_claims_true ||
    die "after the kubelet restart: $(dra_device) / $(dkc get resourceclaims -o wide 2>&1)"
  timer_stop "node Ready -> claims, pods and slice checked true"
  log "slice before the kubelet restart: $slice_before; after: $(dra_slice_id)"
  [ "$(dra_containers)" = "$before" ] || die "claim pods' containers changed across the kubelet restart:
$before
→
$(dra_containers)"
  # A new claim needs the driver registered with the new kubelet: it prepares it.
  timer_start "kubelet restart -> new claim prepared"
  dkc delete pod ctx-4 --wait=false >/dev/null
  wait_for "ctx-4 gone" "$E2E_TIMEOUT" pod_gone ctx-4 || die "ctx-4 was not deleted after the kubelet restart"
  dra_pod ctx-4 | kc apply -f - >/dev/null
  wait_for "a new ctx-4 Running" "$E2E_TIMEOUT" pod_running ctx-4 ||
    { dkc describe pod ctx-4 >&2; die "the restarted kubelet did not run a new claim pod"; }
  timer_stop "kubelet restart -> new claim prepared"
  dra_check_prepared ctx-4
  dra_check_inside ctx-4
  wait_for "3 prepared claims" 30 cdi_specs_are 3 || die "$(cdi_specs) CDI specs after the kubelet restart, want 3"
}

# dra_device_removed: the device node goes (driver unload) → the NPU stays in the slice
# tainted NoSchedule and new claims wait; it comes back → the taint goes, claims run.
# It comes back 0660 root:44, as a udev rule for a "render" group would make it: the
# claim prepared then mirrors that, not the 0600 root:root of before.
dra_device_removed() {
  local tainted='.name == "'$D_DEVICE'" and [.taints[]? | {key, effect}] == [{"key": "'$D_DRIVER'/unhealthy", "effect": "NoSchedule"}]'
  timer_start "device node removed -> NPU tainted in the slice"
  fake_npu_node_remove
  wait_for "$D_DEVICE tainted $D_DRIVER/unhealthy" "$E2E_TIMEOUT" dra_device_is "$tainted" ||
    die "the slice does not taint the NPU after its device node was removed: $(dra_device)"
  timer_stop "device node removed -> NPU tainted in the slice"
  # Running pods keep their allocations (NoSchedule, not NoExecute), and the kubelet,
  # told by the driver's health stream, shows the device unhealthy in their status.
  local p
  for p in ctx-2 ctx-3 ctx-4; do claim_holds "$p" || die "$p lost its claim when the NPU turned unhealthy"; done
  wait_for "ctx-2's allocated resource Unhealthy in its status" 60 pod_device_health_is ctx-2 Unhealthy ||
    die "ctx-2's allocatedResourcesStatus: $(djp pod/ctx-2 '{.status.containerStatuses[0].allocatedResourcesStatus}')"
  log "ctx-2's claim as the kubelet reports it: $(djp pod/ctx-2 '{.status.containerStatuses[0].allocatedResourcesStatus[0].resources[0].health}: {.status.containerStatuses[0].allocatedResourcesStatus[0].resources[0].message}')"
  dkc delete pod ctx-4 --wait=false >/dev/null
  wait_for "ctx-4 gone" "$E2E_TIMEOUT" pod_gone ctx-4 || die "ctx-4 was not deleted"
  dra_pod ctx-4 | kc apply -f - >/dev/null
  wait_for "ctx-4 Pending on the tainted NPU" "$E2E_TIMEOUT" pod_unschedulable_for_claims ctx-4 ||
    { dkc describe pod ctx-4 >&2; die "a claim was allocated on the unhealthy NPU"; }
  timer_start "device node restored -> taint gone"
  # Made under another name and renamed: the driver never sees it 0600.
  mknod -m 0660 "$FAKE_NPU_ROOT/dev/accel/.accel0" c "$ACCEL_MAJOR" 0 && chown 0:44 "$FAKE_NPU_ROOT/dev/accel/.accel0" &&
    mv "$FAKE_NPU_ROOT/dev/accel/.accel0" "$FAKE_NPU_ROOT/dev/accel/accel0" || die "cannot restore the device node"
  [ "$(host_node)" = '{"mode":"0660","uid":0,"gid":44}' ] || die "restored device node: $(host_node)"
  wait_for "$D_DEVICE healthy again" "$E2E_TIMEOUT" dra_device_is "$D_HEALTHY" ||
    die "the slice still taints the NPU after its device node came back: $(dra_device)"
  timer_stop "device node restored -> taint gone"
  wait_for "ctx-2's allocated resource Healthy again" 60 pod_device_health_is ctx-2 Healthy ||
    die "ctx-2's allocatedResourcesStatus: $(djp pod/ctx-2 '{.status.containerStatuses[0].allocatedResourcesStatus}')"
  wait_for "ctx-4 Running on the healthy NPU" "$E2E_TIMEOUT" pod_running ctx-4 ||
    { dkc describe pod ctx-4 >&2; die "ctx-4 stayed Pending after the NPU came back"; }
  dra_check_prepared ctx-4
  dra_check_inside ctx-4
}

# pod_device_health_is POD HEALTH: the kubelet reports POD's claim npu with HEALTH: one
# resource, named by the CDI device the driver prepared for it on the node's NPU.
pod_device_health_is() {
  dkc get pod "$1" -o json | jq -e --arg h "$2" --arg kind "$D_DRIVER/npu=" --arg dev "-$D_DEVICE" '
    [.status.containerStatuses[0].allocatedResourcesStatus[]? | select(.name == "claim:npu") | .resources[]
      | select((.resourceID | startswith($kind) and endswith($dev))) | .health] == [$h]' >/dev/null
}

# dra_plugin_restart: the driver's pod is deleted; the new one reloads its checkpoint
# (claims stay prepared), publishes the same device, and unprepares a claim it did not
# prepare itself.
dra_plugin_restart() {
  local old
  old=$(dra_driver_pod)
  timer_start "DRA driver pod deleted -> new pod Ready"
  dkc delete pod "$old" --wait=false >/dev/null
  wait_for "a new DRA driver pod Ready" "$E2E_TIMEOUT" dra_driver_replaced "$old" ||
    { dkc get pods -o wide >&2; die "no new DRA driver pod became Ready"; }
  timer_stop "DRA driver pod deleted -> new pod Ready"
  wait_for "claims and slice true after the driver restart" "$E2E_TIMEOUT" dra_claims_true ||
    die "after the driver restart: $(dra_device) / $(dkc get resourceclaims -o wide 2>&1)"
  dkc logs "pod/$(dra_driver_pod)" | jq -R 'fromjson? | select(.msg == "checkpoint loaded") | .preparedClaims' | grep -qx 3 ||
    die "the new driver pod did not load 3 prepared claims: $(dkc logs "pod/$(dra_driver_pod)" | head -20)"
  timer_start "claim pod deleted -> claim unprepared (restarted driver)"
  dkc delete pod ctx-4 --wait=false >/dev/null
  wait_for "ctx-4 gone and its claim unprepared" "$E2E_TIMEOUT" pods_and_specs 2 ||
    die "after deleting ctx-4: $(cdi_specs) CDI specs, want 2"
  timer_stop "claim pod deleted -> claim unprepared (restarted driver)"
}

# dra_driver_replaced OLD: a driver pod other than OLD is Ready, and OLD is gone.
dra_driver_replaced() { dra_driver_ready && [ "$(dra_driver_pod)" != "$1" ]; }

# --- 5. a WhisperEncoder with npu.allocation dra -----------------------------------------

# A WhisperEncoder with backend npu and allocation dra: the operator gives its pod a
# ResourceClaimTemplate of 2 contexts; the pod is scheduled on the 2 contexts left and
# prepared; the encoder has no NPU backend yet and says so (Available=False
# NPUUnavailable, phase Failed) rather than serving on the CPU. allocation dra with
# backend cpu or auto requests no device (operator: usesDRA), so Ready is not the
# expected outcome here.
dra_whisper_encoder() {
  local sha
  sha=$(sha256sum "$D_STORE/models/$D_MODEL" | cut -d' ' -f1)
  kc apply -f - >/dev/null <<YAML
apiVersion: whisper.xdna.io/v1alpha1
kind: WhisperEncoder
metadata: {name: dra-enc, namespace: $D_NS}
spec:
  model:
    source:
      pvc: {claimName: e2e-models, path: $D_MODEL}
      sha256: $sha
  backend: npu
  npu: {allocation: dra, contexts: 2}
  replicas: 1
  resources:
    requests: {cpu: 50m, memory: 64Mi}
    limits: {memory: 512Mi}
YAML
  timer_start "WhisperEncoder (dra) apply -> NPUUnavailable"
  wait_for "dra-enc Available=False NPUUnavailable" 300 we_reason_is dra-enc "False NPUUnavailable" ||
    { dkc describe we dra-enc >&2; dkc get pods,jobs,resourceclaims -o wide >&2; die "dra-enc does not report NPUUnavailable"; }
  timer_stop "WhisperEncoder (dra) apply -> NPUUnavailable"
  [ "$(djp we/dra-enc '{.status.phase}')" = Failed ] || die "dra-enc phase $(djp we/dra-enc '{.status.phase}'), want Failed"
  local tmpl pod
  tmpl=$(dkc get resourceclaimtemplates -l whisper.xdna.io/encoder=dra-enc -o json)
  jq -e --arg d "$D_DRIVER" '(.items | length) == 1
    and .items[0].spec.spec.devices.requests[0].exactly.deviceClassName == $d
    and .items[0].spec.spec.devices.requests[0].exactly.capacity.requests.contexts == "2"' <<<"$tmpl" >/dev/null ||
    die "dra-enc's ResourceClaimTemplate: $(jq -c '.items[] | {name: .metadata.name, spec: .spec.spec}' <<<"$tmpl")"
  pod=$(dkc get pods -l whisper.xdna.io/encoder=dra-enc -o jsonpath='{.items[0].metadata.name}')
  [ -n "$pod" ] || die "no encoder pod for dra-enc"
  [ -z "$(djp "pod/$pod" '{.spec.containers[0].resources.limits.amd\.com/npu}')" ] || die "$pod asks for amd.com/npu besides its claim"
  claim_holds "$pod" || die "$pod's claim: $(dkc get resourceclaim "$(pod_claim "$pod")" -o json | jq -c .status)"
  dra_check_prepared "$pod"
  # The spec's XDNA_MEMLOCK_BYTES is met by CAP_IPC_LOCK (CDI cannot raise RLIMIT_MEMLOCK).
  container_spec "$pod" | jq -e '.process.capabilities.effective | index("CAP_IPC_LOCK")' >/dev/null ||
    die "$pod runs without CAP_IPC_LOCK: XRT could not pin XDNA_MEMLOCK_BYTES ($(container_spec "$pod" | jq -c .process.capabilities))"
  log "dra-enc: pod $pod holds 2 contexts of $D_DEVICE; $(djp we/dra-enc '{.status.conditions[?(@.type=="Available")].message}')"
}

# we_reason_is NAME "STATUS REASON": NAME's Available condition.
we_reason_is() {
  [ "$(djp "we/$1" '{.status.conditions[?(@.type=="Available")].status} {.status.conditions[?(@.type=="Available")].reason}')" = "$2" ]
}

# --- 6. uninstall ------------------------------------------------------------------------

# dra_uninstall deletes the workloads first (the driver must unprepare their claims),
# then the release; the kubelet then removes the driver's ResourceSlices.
dra_uninstall() {
  dkc delete we dra-enc --wait=false >/dev/null
  dkc delete pods -l app=dra-ctx --wait=false >/dev/null
  wait_for "claim pods and the encoder gone, claims deleted" "$E2E_TIMEOUT" dra_workloads_gone ||
    die "left: $(dkc get pods,resourceclaims -o name | tr '\n' ' ')"
  wait_for "every claim unprepared" 30 cdi_specs_are 0 || die "the driver left CDI specs: $(ls "$D_CDI")"
  dra_helm uninstall "$D_RELEASE" -n "$D_NS" >>"$E2E_LOGS/helm-dra.log" 2>&1 || die "helm uninstall failed"
  wait_for "DRA driver gone" "$E2E_TIMEOUT" no_dra_driver_pods || die "the DRA driver still runs after helm uninstall"
  timer_start "DRA driver uninstalled -> its ResourceSlices removed"
  wait_for "the driver's ResourceSlices removed" "$E2E_TIMEOUT" no_dra_slices ||
    die "ResourceSlices left after the driver went: $(kc get resourceslices -o name)"
  timer_stop "DRA driver uninstalled -> its ResourceSlices removed"
  ! kc get deviceclass "$D_DRIVER" >/dev/null 2>&1 || die "helm uninstall left the DeviceClass $D_DRIVER"
  kc delete crd whisperencoders.whisper.xdna.io >/dev/null
  kc delete namespace "$D_NS" --wait=false >/dev/null
  kc delete pv e2e-dra-cache e2e-dra-models --wait=false >/dev/null
  kc label node "$E2E_NAME" feature.node.kubernetes.io/pci-1180_1022_1502.present- >/dev/null
  rm -rf "$FAKE_NPU_ROOT"
}

dra_workloads_gone() {
  [ -z "$(dkc get pods -l 'app=dra-ctx' -o name)$(dkc get pods -l whisper.xdna.io/encoder=dra-enc -o name)" ] &&
    [ -z "$(dkc get resourceclaims -o name)" ]
}
no_dra_driver_pods() { [ -z "$(dkc get pods -l app.kubernetes.io/component=dra-driver -o name)" ]; }
no_dra_slices() { [ -z "$(kc get resourceslices -o json | jq -r --arg d "$D_DRIVER" '.items[] | select(.spec.driver == $d) | .metadata.name')" ]; }
