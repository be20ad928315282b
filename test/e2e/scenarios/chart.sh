# shellcheck shell=bash
# Chart scenario: the Helm chart installed with the real helm on the real node, our
# images, no registry. The device plugin DaemonSet lands on the node through the chart's
# placement label and registers amd.com/npu with the real kubelet (0 devices: no NPU
# here); the operator stages the bundled demo model from a PVC into the chart's cache claim
# and serves it (backend cpu) behind its Service; a request through the Service gets the
# encoder's hidden states; helm uninstall keeps the CRD. Storage is two hostPath
# PersistentVolumes under $E2E_ROOT (the node has no provisioner).
#
#   E2E_SCENARIOS="smoke chart" make e2e

CHART_NS=xdna-whisper
CHART_RELEASE=xdna-whisper
CHART_STORE=$E2E_ROOT/chart-volumes

# chart_helm runs helm inside the node's network namespace as the cluster admin.
chart_helm() {
  innet env HELM_CONFIG_HOME="$E2E_RUN/helm/config" HELM_CACHE_HOME="$E2E_RUN/helm/cache" \
    HELM_DATA_HOME="$E2E_RUN/helm/data" "$HELM_BIN" --kubeconfig "$ADMIN_KUBECONFIG" "$@"
}

# image_set NAME KEY prints --set flags pointing chart image KEY at our image NAME.
image_set() {
  local ref
  ref=$(image_ref "$1")
  echo "--set=$2.image.repository=${ref%:*} --set=$2.image.tag=${ref##*:} --set=$2.image.pullPolicy=Never"
}

# chart_volumes makes the hostPath PersistentVolumes: the weights cache (RWX, owned by
# the stager's UID 65532) and a read-only model volume holding the bundled demo ONNX.
chart_volumes() {
  mkdir -p "$CHART_STORE/cache" "$CHART_STORE/models"
  chown 65532:65532 "$CHART_STORE/cache"
  install -m 0644 "$REPO_ROOT/encoder/bundled/whisper-demo.onnx" "$CHART_STORE/models/whisper-demo.onnx"
  kc apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolume
metadata: {name: e2e-whisper-cache}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {path: $CHART_STORE/cache, type: Directory}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: e2e-whisper-models}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadOnlyMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {path: $CHART_STORE/models, type: Directory}
YAML
}

scenario_chart() {
  HELM_BIN=$("$REPO_ROOT/hack/helm.sh")
  mkdir -p "$E2E_RUN/helm"
  kc create namespace "$CHART_NS" >/dev/null
  kc label namespace "$CHART_NS" pod-security.kubernetes.io/enforce=privileged >/dev/null
  wait_for "service account $CHART_NS/default" 60 kc -n "$CHART_NS" get serviceaccount default
  kc label node "$E2E_NAME" feature.node.kubernetes.io/pci-1180_1022_1502.present=true >/dev/null
  chart_volumes

  timer_start "helm install → operator and device plugin Ready"
  # shellcheck disable=SC2046 # image_set prints several flags
  chart_helm install "$CHART_RELEASE" "$REPO_ROOT/charts/xdna-whisper" -n "$CHART_NS" \
    $(image_set whisper-operator operator) $(image_set whisper-encoder encoder) $(image_set xdna-device-plugin devicePlugin) \
    --set cache.storageClassName=- --set cache.volumeName=e2e-whisper-cache --set cache.size=1Gi \
    --set devicePlugin.nfdFeatureFile.enabled=false --set nodeFeatureRule.create=false \
    >"$E2E_LOGS/helm-install.log" 2>&1 || { cat "$E2E_LOGS/helm-install.log" >&2; die "helm install failed"; }
  grep -q "get we -w" "$E2E_LOGS/helm-install.log" || die "helm install printed no NOTES (log: $E2E_LOGS/helm-install.log)"
  wait_for "operator Deployment available" "$E2E_TIMEOUT" \
    kc -n "$CHART_NS" wait --for=condition=Available "deployment/$CHART_RELEASE-operator" --timeout=2s ||
    { kc -n "$CHART_NS" get pods -o wide >&2; die "the operator did not become available"; }
  wait_for "device plugin DaemonSet ready on the node" "$E2E_TIMEOUT" chart_daemonset_ready ||
    { kc -n "$CHART_NS" get pods -o wide >&2; die "the device plugin did not become ready"; }
  timer_stop "helm install → operator and device plugin Ready"
  # The plugin registered through the chart's kubelet mount: the node advertises the
  # resource, with no device because this machine has no NPU.
  wait_for "node capacity amd.com/npu registered (0)" "$E2E_TIMEOUT" chart_npu_capacity 0 ||
    die "the device plugin did not register amd.com/npu with the kubelet"

  kc -n "$CHART_NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: e2e-models}
spec:
  accessModes: [ReadOnlyMany]
  storageClassName: ""
  volumeName: e2e-whisper-models
  resources: {requests: {storage: 1Gi}}
---
apiVersion: whisper.xdna.io/v1alpha1
kind: WhisperEncoder
metadata: {name: demo}
spec:
  model:
    source:
      pvc: {claimName: e2e-models, path: whisper-demo.onnx}
  backend: cpu
  replicas: 1
  resources:
    requests: {cpu: 100m, memory: 128Mi}
    limits: {memory: 1Gi}
YAML
  timer_start "WhisperEncoder apply → Ready (staging + serving)"
  wait_for "WhisperEncoder demo Ready" 300 chart_phase Ready ||
    { kc -n "$CHART_NS" describe we demo >&2; kc -n "$CHART_NS" get pods,jobs -o wide >&2; die "WhisperEncoder demo not Ready"; }
  timer_stop "WhisperEncoder apply → Ready (staging + serving)"
  kc -n "$CHART_NS" get we demo >&2

  local ip out
  ip=$(kc -n "$CHART_NS" get service demo -o jsonpath='{.spec.clusterIP}')
  out="$E2E_RUN/chart-hidden.npy"
  innet "$REPO_ROOT/bin/whisper-encoder" encode --server "http://$ip:8080" --out "$out" \
    "$REPO_ROOT/encoder/bundled/speech_22k.wav" >"$E2E_LOGS/chart-encode.log" 2>&1 ||
    { cat "$E2E_LOGS/chart-encode.log" >&2; die "encode through Service demo ($ip) failed"; }
  [ -s "$out" ] || die "encode wrote no hidden states"
  log "encoded speech_22k.wav through Service demo ($ip): $(stat -c %s "$out") bytes of hidden states"

  kc -n "$CHART_NS" delete we demo --wait=true --timeout=60s >/dev/null
  chart_helm uninstall "$CHART_RELEASE" -n "$CHART_NS" >>"$E2E_LOGS/helm-install.log" 2>&1 || die "helm uninstall failed"
  kc get crd whisperencoders.whisper.xdna.io >/dev/null || die "helm uninstall removed the CRD (it must be kept)"
  kc delete crd whisperencoders.whisper.xdna.io >/dev/null
  kc delete namespace "$CHART_NS" --wait=false >/dev/null
  wait_for "namespace $CHART_NS deleted" "$E2E_TIMEOUT" namespace_gone "$CHART_NS" || die "namespace $CHART_NS was not deleted"
  kc delete pv e2e-whisper-cache e2e-whisper-models >/dev/null
  kc label node "$E2E_NAME" feature.node.kubernetes.io/pci-1180_1022_1502.present- >/dev/null
}

# chart_daemonset_ready: the device plugin DaemonSet has one pod, ready.
chart_daemonset_ready() {
  [ "$(kc -n "$CHART_NS" get daemonset "$CHART_RELEASE-device-plugin" -o jsonpath='{.status.numberReady}/{.status.desiredNumberScheduled}')" = "1/1" ]
}

# chart_npu_capacity N: the node's capacity lists amd.com/npu as N.
chart_npu_capacity() {
  [ "$(kc get node "$E2E_NAME" -o jsonpath='{.status.capacity.amd\.com/npu}')" = "$1" ]
}

# chart_phase P: WhisperEncoder demo is in phase P.
chart_phase() {
  [ "$(kc -n "$CHART_NS" get we demo -o jsonpath='{.status.phase}')" = "$1" ]
}
