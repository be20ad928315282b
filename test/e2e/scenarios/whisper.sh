# shellcheck shell=bash
# The whole product on the real node (issue 8): `helm install` of our chart with our
# images; a fake XDNA1 NPU found by the real device plugin; WhisperEncoders staged and
# served on CPU, encoded through their Service over HTTP and gRPC, scaled, sharing
# staged weights; an NPU WhisperEncoder that gets the device and says the NPU is
# unusable instead of falling back to the CPU; and faults: the operator killed
# mid-staging, the kubelet restarted (recovery of amd.com/npu measured), the device
# node removed and restored, NPU sharing switched on by `helm upgrade`, and the
# WhisperEncoders deleted with their objects collected by the real garbage collector.
#
# Every packet stays inside the node's network namespace: the model is served over
# HTTP by our e2e-agent in a pod, clients run on the node (netns) or in pods, and
# Services are reached by ClusterIP (the node has no DNS).
#
#   E2E_SCENARIOS=whisper make e2e

W_NS=xdna-whisper
W_RELEASE=xdna-whisper
W_STORE=$E2E_ROOT/volumes
W_NFD_DIR=$E2E_ROOT/nfd/features.d
# The model download's pace: the 0.9 MB demo model then takes ~14 s, long enough to
# kill the operator while the stager is half-way through it.
W_MODEL_RATE=${W_MODEL_RATE:-65536}
W_MODEL=whisper-demo.onnx
W_SPEECH=$REPO_ROOT/encoder/bundled/speech_22k.wav
W_OPERATOR=$W_RELEASE-operator
W_PLUGIN=$W_RELEASE-device-plugin

# kcn is kubectl in the scenario's namespace.
kcn() { kc -n "$W_NS" "$@"; }

# jp KIND/NAME JSONPATH prints one field of an object in the namespace.
jp() { kcn get "$1" -o jsonpath="$2"; }

# w_helm runs helm inside the node's network namespace as the cluster admin.
w_helm() {
  innet env HELM_CONFIG_HOME="$E2E_RUN/helm/config" HELM_CACHE_HOME="$E2E_RUN/helm/cache" \
    HELM_DATA_HOME="$E2E_RUN/helm/data" "$HELM_BIN" --kubeconfig "$ADMIN_KUBECONFIG" "$@"
}

scenario_whisper() {
  HELM_BIN=$("$REPO_ROOT/hack/helm.sh")
  [ -f "$W_SPEECH" ] || die "no speech clip at $W_SPEECH"
  whisper_install
  whisper_device_plugin
  whisper_cpu_encoder
  whisper_encode
  whisper_scale_and_share_weights
  whisper_npu_encoder
  whisper_kubelet_restart
  whisper_device_removed
  whisper_npu_sharing
  whisper_garbage_collection
  whisper_uninstall
}

# --- 1. helm install ---------------------------------------------------------------

# whisper_install makes the fake NPU, the namespace, storage and the model server,
# then installs the chart pointing the device plugin at the fake NPU.
whisper_install() {
  fake_npu_make
  mkdir -p "$W_STORE/cache" "$W_STORE/models" "$E2E_RUN/helm"
  chown 65532:65532 "$W_STORE/cache"
  install -m 0644 "$REPO_ROOT/encoder/bundled/$W_MODEL" "$W_STORE/models/$W_MODEL"
  W_MODEL_SHA=$(sha256sum "$W_STORE/models/$W_MODEL" | cut -d' ' -f1)

  kc create namespace "$W_NS" >/dev/null
  # The device plugin (hostPath) and NPU encoders (UID 0 with IPC_LOCK) need "privileged".
  kc label namespace "$W_NS" pod-security.kubernetes.io/enforce=privileged >/dev/null
  wait_for "service account $W_NS/default" 60 kcn get serviceaccount default
  # What NFD's rule (nodeFeatureRule) would put on an XDNA1 node; the plugin is placed by it.
  kc label node "$E2E_NAME" feature.node.kubernetes.io/pci-1180_1022_1502.present=true >/dev/null
  store_volumes whisper "$W_STORE" "$W_NS"
  whisper_model_server

  cat >"$E2E_RUN/helm/values.yaml" <<YAML
operator:
  image: $(image_values whisper-operator)
encoder:
  image: $(image_values whisper-encoder)
devicePlugin:
  image: $(image_values xdna-device-plugin)
  pluginDir: $E2E_KUBELET_DIR/device-plugins
  hostPaths: {sys: $FAKE_NPU_ROOT/sys, dev: $FAKE_NPU_ROOT/dev}
  nfdFeatureFile: {enabled: true, dir: $W_NFD_DIR}
  logFormat: text
cache: {storageClassName: "-", volumeName: e2e-whisper-cache, size: 1Gi}
stager: {liveProgress: true}
nodeFeatureRule: {create: false}
YAML
  timer_start "helm install -> operator and device plugin Ready"
  # W_EXTRA_VALUES: another scenario's values file on top (e.g. autoscale's KEDA settings).
  w_helm install "$W_RELEASE" "$REPO_ROOT/charts/xdna-whisper" -n "$W_NS" -f "$E2E_RUN/helm/values.yaml" ${W_EXTRA_VALUES:+-f "$W_EXTRA_VALUES"} \
    >"$E2E_LOGS/helm.log" 2>&1 || { cat "$E2E_LOGS/helm.log" >&2; die "helm install failed"; }
  grep -q "get we -w" "$E2E_LOGS/helm.log" || die "helm install printed no NOTES (log: $E2E_LOGS/helm.log)"
  wait_for "operator Deployment available" "$E2E_TIMEOUT" \
    kcn wait --for=condition=Available "deployment/$W_OPERATOR" --timeout=2s ||
    { kcn get pods -o wide >&2; die "the operator did not become available"; }
  wait_for "device plugin DaemonSet ready on the node" "$E2E_TIMEOUT" daemonset_ready ||
    { kcn get pods -o wide >&2; die "the device plugin did not become ready"; }
  timer_stop "helm install -> operator and device plugin Ready"
  [ "$(kc get crd whisperencoders.whisper.xdna.io -o jsonpath='{.metadata.annotations.helm\.sh/resource-policy}')" = keep ] ||
    die "the chart's CRD is not annotated helm.sh/resource-policy: keep"
}

# image_values NAME prints the chart's image block for our imported image NAME.
image_values() {
  local ref
  ref=$(image_ref "$1")
  echo "{repository: ${ref%:*}, tag: \"${ref##*:}\", pullPolicy: Never}"
}

# whisper_model_server runs our e2e-agent in a pod serving the demo ONNX (read-only
# hostPath) at a paced rate, behind the Service model-server.
whisper_model_server() {
  kcn apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: model-server, labels: {app: model-server}}
spec:
  terminationGracePeriodSeconds: 2
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
    - name: agent
      image: $(image_ref e2e-agent)
      imagePullPolicy: Never
      args: [serve, -listen, ":8080", -dir, /models, -rate, "$W_MODEL_RATE"]
      ports: [{containerPort: 8080, name: http}]
      readinessProbe: {httpGet: {path: /readyz, port: http}, periodSeconds: 1}
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
      volumeMounts: [{name: models, mountPath: /models, readOnly: true}]
  volumes:
    - name: models
      hostPath: {path: $W_STORE/models, type: Directory}
---
apiVersion: v1
kind: Service
metadata: {name: model-server}
spec:
  selector: {app: model-server}
  ports: [{port: 80, targetPort: http}]
YAML
}

daemonset_ready() {
  [ "$(jp "daemonset/$W_PLUGIN" '{.status.numberReady}/{.status.desiredNumberScheduled}')" = "1/1" ]
}

# --- 2. the fake NPU, found by the real device plugin ---------------------------------

# node_npu prints the node's capacity and allocatable amd.com/npu ("capacity/allocatable").
node_npu() { kc get node "$E2E_NAME" -o jsonpath='{.status.capacity.amd\.com/npu}/{.status.allocatable.amd\.com/npu}'; }

# npu_is C/A: the node reports capacity C and allocatable A of amd.com/npu.
npu_is() { [ "$(node_npu)" = "$1" ]; }

# plugin_metric NAME prints the device plugin's metric NAME (first sample) from its /metrics.
plugin_metric() {
  local ip metrics
  ip=$(kcn get pods -l app.kubernetes.io/component=device-plugin -o jsonpath='{.items[0].status.podIP}') || return 1
  metrics=$(agent get -timeout 3s "http://$ip:8080/metrics") || return 1
  awk -v m="$1" '$1 == m || index($1, m "{") == 1 { print $2; exit }' <<<"$metrics"
}

# plugin_log_has PATTERN: the device plugin's log has a line matching PATTERN.
plugin_log_has() {
  local l
  l=$(kcn logs "daemonset/$W_PLUGIN") || return 1
  grep -q "$1" <<<"$l"
}

# plugin_metric_is NAME VALUE
plugin_metric_is() { [ "$(plugin_metric "$1")" = "$2" ]; }

whisper_device_plugin() {
  timer_start "device plugin Ready -> amd.com/npu allocatable 1"
  wait_for "node allocatable amd.com/npu 1" "$E2E_TIMEOUT" npu_is 1/1 ||
    { kcn logs "daemonset/$W_PLUGIN" >&2 || true; die "the node does not advertise the fake NPU (amd.com/npu: $(node_npu))"; }
  timer_stop "device plugin Ready -> amd.com/npu allocatable 1"
  plugin_log_has "NPU discovered.*$FAKE_NPU_PCI" ||
    die "the device plugin's log has no 'NPU discovered' line for $FAKE_NPU_PCI: $(kcn logs "daemonset/$W_PLUGIN" 2>&1 | tail -20)"
  local want got
  want=$(printf '%s\n' amd.com/npu.contexts-per-npu=1 amd.com/npu.count=1 amd.com/npu.family=xdna1 \
    "amd.com/npu.firmware=$FAKE_NPU_FIRMWARE" amd.com/npu.present=true)
  wait_for "NFD feature file" 30 test -s "$W_NFD_DIR/xdna-npu" || die "no NFD feature file in $W_NFD_DIR"
  got=$(sort "$W_NFD_DIR/xdna-npu")
  [ "$got" = "$want" ] || die "NFD feature file $W_NFD_DIR/xdna-npu holds:
$got
want:
$want"
  log "node advertises amd.com/npu 1 (fake XDNA1 at $FAKE_NPU_PCI); NFD labels: $(tr '\n' ' ' <<<"$got")"
}

# --- 3. WhisperEncoder on CPU ---------------------------------------------------------

# we_yaml NAME BACKEND REPLICAS [pvc] prints a WhisperEncoder serving the demo model
# (pinned by sha256) from the model server, or with "pvc" from the claim e2e-models.
we_yaml() {
  local source="url: http://$W_MODEL_IP/files/$W_MODEL"
  [ "${4:-}" != pvc ] || source="pvc: {claimName: e2e-models, path: $W_MODEL}"
  cat <<YAML
apiVersion: whisper.xdna.io/v1alpha1
kind: WhisperEncoder
metadata: {name: $1, namespace: $W_NS}
spec:
  model:
    source:
      $source
      sha256: $W_MODEL_SHA
  backend: $2
  replicas: $3
  resources:
    requests: {cpu: 50m, memory: 64Mi}
    limits: {memory: 512Mi}
YAML
}

# we_phase NAME prints the phase of WhisperEncoder NAME.
we_phase() { jp "we/$1" '{.status.phase}'; }
we_phase_is() { [ "$(we_phase "$1")" = "$2" ]; }

# we_condition NAME TYPE prints "status reason observedGeneration/generation".
we_condition() {
  jp "we/$1" "{.status.conditions[?(@.type==\"$2\")].status} {.status.conditions[?(@.type==\"$2\")].reason} {.status.conditions[?(@.type==\"$2\")].observedGeneration}/{.metadata.generation}"
}

# staging_midway NAME: the stager has reported progress, and is not done.
staging_midway() {
  local p bytes total
  p=$(jp "we/$1" '{.status.staging.bytesDone} {.status.staging.bytesTotal}')
  read -r bytes total <<<"$p"
  [ -n "$total" ] && ((bytes > 0 && total > 0 && bytes < total))
}

# staging_jobs prints the staging Jobs of the namespace: "name uid succeeded failed".
staging_jobs() {
  kcn get jobs -l app.kubernetes.io/component=staging \
    -o jsonpath='{range .items[*]}{.metadata.name} {.metadata.uid} {.status.succeeded} {.status.failed}{"\n"}{end}'
}

whisper_cpu_encoder() {
  wait_for "model server Ready" "$E2E_TIMEOUT" kcn wait --for=condition=Ready pod/model-server --timeout=2s ||
    die "the model server did not become Ready"
  W_MODEL_IP=$(jp service/model-server '{.spec.clusterIP}')
  timer_start "WhisperEncoder apply -> Ready (staging + serving)"
  we_yaml enc-a cpu 1 | kc apply -f - >/dev/null
  # Every phase the WhisperEncoder goes through, from the API's watch.
  nsenter --net="$NETNS" -- "$K8S_BIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" -n "$W_NS" get we enc-a --watch \
    -o jsonpath='{.status.phase}{"\n"}' >"$E2E_LOGS/enc-a-phases.log" 2>&1 &
  local watcher=$!

  # Kill the operator while the stager is half-way through the download.
  wait_for "staging of enc-a under way (progress reported)" 90 staging_midway enc-a ||
    { kcn describe we enc-a >&2; die "enc-a never reported staging progress"; }
  local job job_uid op_pod progress
  job=$(jp we/enc-a '{.status.staging.job}')
  job_uid=$(jp "job/$job" '{.metadata.uid}')
  progress=$(jp we/enc-a '{.status.staging.bytesDone}/{.status.staging.bytesTotal}')
  op_pod=$(kcn get pods -l app.kubernetes.io/component=operator -o jsonpath='{.items[0].metadata.name}')
  kcn delete pod "$op_pod" --grace-period=0 --force >/dev/null 2>&1
  log "killed operator pod $op_pod while Job $job had staged $progress bytes"
  wait_for "a new operator pod Ready" "$E2E_TIMEOUT" operator_replaced "$op_pod" || die "no new operator pod became Ready"

  timer_start "staging (paced download + convert)"
  wait_for "WhisperEncoder enc-a Ready" 300 we_phase_is enc-a Ready ||
    { kcn describe we enc-a >&2; kcn get pods,jobs -o wide >&2; die "WhisperEncoder enc-a not Ready"; }
  timer_stop "WhisperEncoder apply -> Ready (staging + serving)"
  kill "$watcher" 2>/dev/null || true
  wait "$watcher" 2>/dev/null || true
  timing_add "staging Job (paced download + convert, 1 s resolution)" "$(job_seconds "$job")000"

  # One staging Job, the same one, run once: the restarted operator adopted it.
  local jobs
  jobs=$(staging_jobs)
  [ "$jobs" = "$job $job_uid 1 " ] || die "staging Jobs after the operator was killed: '$jobs', want only '$job $job_uid 1' (succeeded, never failed)"
  [ "$(model_downloads)" = 1 ] || die "the model was downloaded $(model_downloads) times, want once"
  whisper_phases_seen
  whisper_staged enc-a "$job"
  whisper_status_ready enc-a cpu 1
}

# operator_replaced OLD: a ready operator pod other than OLD runs.
operator_replaced() {
  local p
  p=$(kcn get pods -l app.kubernetes.io/component=operator \
    -o jsonpath='{range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}')
  grep -v "^$1 " <<<"$p" | grep -q ' True$'
}

# job_seconds JOB prints how long Job JOB ran (start to completion, 1 s resolution).
job_seconds() {
  local t
  t=$(jp "job/$1" '{.status.startTime} {.status.completionTime}')
  read -r s e <<<"$t"
  echo $(($(date -d "$e" +%s) - $(date -d "$s" +%s)))
}

# model_downloads counts the model server's GETs of the model.
model_downloads() {
  local l
  l=$(kcn logs model-server)
  grep -c "GET /files/$W_MODEL " <<<"$l" || true
}

# whisper_phases_seen: enc-a went Staging → Deploying → Ready, never Failed.
whisper_phases_seen() {
  local seen
  seen=$(grep -v '^$' "$E2E_LOGS/enc-a-phases.log" | uniq | tr '\n' ' ')
  grep -q "Failed" <<<"$seen" && die "enc-a went through phase Failed: $seen"
  [[ "$seen" =~ Staging.*Deploying.*Ready ]] || die "enc-a phases seen: $seen; want Staging → Deploying → Ready"
  log "enc-a phases: $seen"
}

# whisper_staged NAME JOB: Job JOB ran the real `whisper-encoder stage` from our image,
# its result is the WhisperEncoder's weights, and the weights are in the cache volume.
whisper_staged() {
  local key pod cmd img msg
  key=$(jp "we/$1" '{.status.weights.key}')
  [ ${#key} = 40 ] || die "$1: status.weights.key '$key', want 40 hex digits"
  pod=$(kcn get pods -l "job-name=$2" -o jsonpath='{.items[0].metadata.name}')
  cmd=$(jp "pod/$pod" '{.spec.containers[0].command} {.spec.containers[0].args}')
  img=$(jp "pod/$pod" '{.spec.containers[0].image}')
  grep -q '"whisper-encoder".*"stage"' <<<"$cmd" || die "staging pod $pod runs $cmd, want whisper-encoder stage"
  [ "$img" = "$(image_ref whisper-encoder)" ] || die "staging pod $pod runs image $img, want $(image_ref whisper-encoder)"
  msg=$(jp "pod/$pod" '{.status.containerStatuses[0].state.terminated.message}')
  grep -q "\"key\":\"$key\"" <<<"$msg" || die "stager's result '$msg' does not name key $key"
  grep -q "\"sourceSHA256\":\"$W_MODEL_SHA\"" <<<"$msg" || die "stager's result '$msg' does not name the model's sha256 $W_MODEL_SHA"
  local f
  for f in model.safetensors config.json manifest.json; do
    [ -s "$W_STORE/cache/$key/$f" ] || die "the cache volume has no $key/$f"
  done
  grep -q "$W_MODEL_SHA" "$W_STORE/cache/$key/manifest.json" || die "$key/manifest.json does not name the source's sha256"
  log "Job $2 ran '${cmd//\"/}'; weights $key in the cache volume ($(du -sk "$W_STORE/cache/$key" | cut -f1) kB)"
}

# whisper_status_ready NAME BACKEND N [TASKS]: phase, conditions and printer columns of a
# WhisperEncoder serving N ready replicas of a model that can do TASKS (default "encode":
# the encoder-only fixture).
whisper_status_ready() {
  local c want got gen row key
  gen=$(jp "we/$1" '{.metadata.generation}')
  for c in "WeightsStaged True Staged" "Available True MinimumReplicasAvailable" "Ready True Ready"; do
    want="${c#* } $gen/$gen"
    got=$(we_condition "$1" "${c%% *}")
    [ "$got" = "$want" ] || die "$1: condition ${c%% *} is '$got', want '$want' (status reason observedGeneration/generation)"
  done
  key=$(jp "we/$1" '{.status.weights.key}')
  row=$(kcn get we "$1" --no-headers | awk '{print $1, $2, $3, $4, $5, $6}')
  want="$1 Ready $3/$3 $2 ${4:-encode} ${key:0:12}"
  [ "$row" = "$want" ] ||
    die "kubectl get we $1 prints '$row', want '$want' (NAME PHASE READY BACKEND TASKS WEIGHTS)"
  log "$1: $(kcn get we "$1" --no-headers)"
}

# whisper_encode: a real speech clip through Service enc-a, over HTTP from the node and
# over gRPC from our own client in a pod; both give the same hidden states.
whisper_encode() {
  local ip key http grpc
  ip=$(jp service/enc-a '{.spec.clusterIP}')
  key=$(jp we/enc-a '{.status.weights.key}')
  http=$E2E_RUN/hidden-http.npy grpc=$E2E_RUN/hidden-grpc.npy
  innet "$E2E_BIN/whisper-encoder" encode --server "http://$ip:8080" --out "$http" "$W_SPEECH" \
    >"$E2E_LOGS/encode-http.log" 2>&1 || { cat "$E2E_LOGS/encode-http.log" >&2; die "HTTP encode through Service enc-a ($ip:8080) failed"; }
  grep -q "model $key" "$E2E_LOGS/encode-http.log" || die "HTTP encode was not served by model $key: $(cat "$E2E_LOGS/encode-http.log")"

  kcn create configmap speech --from-file=speech.wav="$W_SPEECH" >/dev/null
  kcn apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: grpc-client}
spec:
  terminationGracePeriodSeconds: 2
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: {type: RuntimeDefault}}
  initContainers:
    - name: encode
      image: $(image_ref whisper-encoder)
      imagePullPolicy: Never
      args: [encode, --server, "$ip:9090", --out, /out/hidden.npy, /audio/speech.wav]
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
      volumeMounts: [{name: out, mountPath: /out}, {name: audio, mountPath: /audio}]
  containers:
    - name: files
      image: $(image_ref e2e-agent)
      imagePullPolicy: Never
      args: [serve, -listen, ":8080", -dir, /out]
      readinessProbe: {httpGet: {path: /readyz, port: 8080}, periodSeconds: 1}
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
      volumeMounts: [{name: out, mountPath: /out, readOnly: true}]
  volumes:
    - {name: out, emptyDir: {}}
    - {name: audio, configMap: {name: speech}}
YAML
  wait_for "gRPC client pod done encoding" "$E2E_TIMEOUT" kcn wait --for=condition=Ready pod/grpc-client --timeout=2s ||
    { kcn logs grpc-client -c encode >&2 || true; die "the gRPC client pod did not encode through Service enc-a ($ip:9090)"; }
  local glog
  glog=$(kcn logs grpc-client -c encode)
  grep -q "via $ip:9090 .*model $key" <<<"$glog" || die "gRPC client log: '$glog'; want an encode via $ip:9090 by model $key"
  agent get -o "$grpc" "http://$(jp pod/grpc-client '{.status.podIP}'):8080/files/hidden.npy" ||
    die "cannot fetch the gRPC client's hidden states"
  local cmp
  cmp=$(agent npy-compare -tol 1e-5 "$grpc" "$http") || die "gRPC and HTTP hidden states differ: $cmp"
  log "speech_22k.wav through Service enc-a: HTTP from the node and gRPC from pod grpc-client agree ($cmp)"
  kcn delete pod grpc-client --wait=false >/dev/null
}

# whisper_scale_and_share_weights: kubectl scale gives two ready pods; a second
# WhisperEncoder with the same source is served from the staged weights, no new Job.
whisper_scale_and_share_weights() {
  kcn scale we/enc-a --replicas 2 >/dev/null
  wait_for "enc-a 2/2 Ready" "$E2E_TIMEOUT" we_ready_summary enc-a 2/2 ||
    { kcn get we,pods -o wide >&2; die "enc-a did not scale to 2 ready replicas"; }
  local ready
  ready=$(kcn get pods -l whisper.xdna.io/encoder=enc-a \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}')
  ready=$(grep -c True <<<"$ready" || true)
  [ "$ready" = 2 ] || die "enc-a has $ready ready pods after kubectl scale --replicas 2, want 2"
  whisper_status_ready enc-a cpu 2

  local jobs_before
  jobs_before=$(staging_jobs)
  timer_start "second WhisperEncoder, same source -> Ready"
  we_yaml enc-b cpu 1 | kc apply -f - >/dev/null
  wait_for "WhisperEncoder enc-b Ready" "$E2E_TIMEOUT" we_phase_is enc-b Ready ||
    { kcn describe we enc-b >&2; die "enc-b not Ready"; }
  timer_stop "second WhisperEncoder, same source -> Ready"
  [ "$(staging_jobs)" = "$jobs_before" ] || die "a second WhisperEncoder with the same source changed the staging Jobs: '$(staging_jobs)', before '$jobs_before'"
  [ "$(model_downloads)" = 1 ] || die "the model was downloaded $(model_downloads) times, want once"
  [ "$(jp we/enc-b '{.status.weights.key}')" = "$(jp we/enc-a '{.status.weights.key}')" ] || die "enc-b serves other weights than enc-a"
  whisper_status_ready enc-b cpu 1
}

# we_ready_summary NAME S: the READY column of NAME is S and the phase is Ready.
we_ready_summary() { [ "$(jp "we/$1" '{.status.readySummary} {.status.phase}')" = "$2 Ready" ]; }

# --- 4. WhisperEncoder on the (fake) NPU ------------------------------------------------

# npu_pod_spec POD prints the OCI spec containerd ran the pod's encoder container
# with (its latest container, running or exited).
npu_pod_spec() {
  local id
  id=$(jp "pod/$1" '{.status.containerStatuses[0].containerID}')
  [ -n "$id" ] || id=$(jp "pod/$1" '{.status.containerStatuses[0].lastState.terminated.containerID}')
  [ -n "$id" ] || return 1
  ctrc containers info "${id#containerd://}" | jq -c .Spec
}

# npu_failed_once POD: the encoder container of POD has exited with an error.
npu_failed_once() {
  [ -n "$(jp "pod/$1" '{.status.containerStatuses[0].lastState.terminated.exitCode}{.status.containerStatuses[0].state.terminated.exitCode}' | tr -d 0)" ]
}

whisper_npu_encoder() {
  # This one stages the same bytes from a claim: another source, so its own Job, whose
  # stager finds them in the content-addressed cache under the same key.
  local jobs_before
  jobs_before=$(staging_jobs)
  we_yaml npu-enc npu 1 pvc | kc apply -f - >/dev/null
  wait_for "npu-enc WeightsStaged" "$E2E_TIMEOUT" we_condition_is npu-enc WeightsStaged "True Staged" ||
    { kcn describe we npu-enc >&2; die "npu-enc's weights were not staged from claim e2e-models"; }
  [ "$(jp we/npu-enc '{.status.weights.key}')" = "$(jp we/enc-a '{.status.weights.key}')" ] ||
    die "the same bytes from a claim staged under key $(jp we/npu-enc '{.status.weights.key}'), want enc-a's"
  [ "$(staging_jobs | grep -vxF "$jobs_before" | awk '{ print $3 }')" = 1 ] ||
    die "staging from the claim: Jobs '$(staging_jobs)', want one more, succeeded"
  [ "$(find "$W_STORE/cache" -mindepth 1 -maxdepth 1 -type d | wc -l)" = 1 ] ||
    die "the cache volume holds $(ls "$W_STORE/cache"), want one staged directory"
  local pod
  wait_for "an NPU encoder pod" 60 npu_pods_exist || die "no encoder pod for npu-enc"
  pod=$(kcn get pods -l whisper.xdna.io/encoder=npu-enc -o jsonpath='{.items[0].metadata.name}')
  wait_for "npu-enc's encoder exits" "$E2E_TIMEOUT" npu_failed_once "$pod" ||
    { kcn describe pod "$pod" >&2; die "the NPU encoder pod $pod did not run"; }

  # The pod got the device and IPC_LOCK: what containerd ran is the truth.
  local spec
  spec=$(npu_pod_spec "$pod") || die "no container spec for $pod in containerd"
  jq -e '.linux.devices[] | select(.path == "/dev/accel/accel0" and .type == "c" and .major == 261 and .minor == 0)' <<<"$spec" >/dev/null ||
    die "$pod's container has no device /dev/accel/accel0 (c 261:0): $(jq -c .linux.devices <<<"$spec")"
  jq -e '.linux.resources.devices[] | select(.allow and .type == "c" and .major == 261 and .minor == 0 and .access == "rw")' <<<"$spec" >/dev/null ||
    die "$pod's device cgroup does not allow c 261:0 rw"
  jq -e '.process.env | index("XDNA_DEVICES=/dev/accel/accel0") and index("XDNA_PCI_ADDRESSES='"$FAKE_NPU_PCI"'")' <<<"$spec" >/dev/null ||
    die "$pod's environment lacks the device plugin's XDNA_DEVICES/XDNA_PCI_ADDRESSES: $(jq -c .process.env <<<"$spec")"
  jq -e '.process.capabilities.effective | index("CAP_IPC_LOCK")' <<<"$spec" >/dev/null ||
    die "$pod's container lacks CAP_IPC_LOCK: $(jq -c .process.capabilities.effective <<<"$spec")"
  [ "$(jp "pod/$pod" '{.spec.containers[0].resources.limits.amd\.com/npu}')" = 1 ] || die "$pod does not request amd.com/npu"

  # The encoder said the NPU is unusable (and that it saw the node), and the
  # WhisperEncoder says so; it never served on the CPU.
  wait_for "npu-enc Available=False NPUUnavailable" "$E2E_TIMEOUT" we_condition_reason npu-enc Available NPUUnavailable ||
    { kcn describe we npu-enc >&2; die "npu-enc does not report NPUUnavailable"; }
  local msg
  msg=$(jp we/npu-enc '{.status.conditions[?(@.type=="Available")].message}')
  [[ "$msg" == *"NPU backend is not available"*"/dev/accel/accel0"* ]] ||
    die "npu-enc's Available message: '$msg'; want the encoder's own message naming /dev/accel/accel0"
  we_phase_is npu-enc Failed || die "npu-enc phase $(we_phase npu-enc), want Failed"
  [ "$(jp we/npu-enc '{.status.readySummary}')" = 0/1 ] || die "npu-enc READY $(jp we/npu-enc '{.status.readySummary}'), want 0/1"
  [ "$(jp "pod/$pod" '{.status.conditions[?(@.type=="Ready")].status}')" = False ] || die "$pod is Ready: it fell back to serving"
  local prev
  prev=$(kcn logs "$pod" --previous 2>/dev/null || kcn logs "$pod")
  [ -n "$prev" ] || die "$pod's encoder logged nothing"
  if grep -qi "serving" <<<"$prev"; then die "$pod's encoder served (on the CPU?): $prev"; fi
  log "npu-enc: pod $pod got /dev/accel/accel0, XDNA_* and CAP_IPC_LOCK; Available=False NPUUnavailable: $msg"

  # Beyond capacity: a second NPU pod stays Pending for want of amd.com/npu.
  kcn scale we/npu-enc --replicas 2 >/dev/null
  wait_for "a second npu-enc pod unschedulable" "$E2E_TIMEOUT" npu_pod_unschedulable ||
    { kcn get pods -o wide >&2; die "the second NPU pod was not refused by the scheduler"; }
  # It stays Pending because the NPU is taken, not for a moment: the node's one
  # allocatable NPU is held by the first pod, bound to the node.
  local bound
  bound="$(npu_pods_bound) bound, $(node_npu) capacity/allocatable"
  [ "$bound" = "1 bound, 1/1 capacity/allocatable" ] ||
    die "npu-enc pods: $bound; want the one NPU held by the first pod (1 bound, 1/1)"
  log "second npu-enc pod Pending: $(jp "pod/$W_PENDING" '{.status.conditions[?(@.type=="PodScheduled")].message}')"
}

# npu_pods_bound prints how many npu-enc pods are bound to a node.
npu_pods_bound() {
  kcn get pods -l whisper.xdna.io/encoder=npu-enc -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | grep -c . || true
}

npu_pods_exist() { [ -n "$(kcn get pods -l whisper.xdna.io/encoder=npu-enc -o name)" ]; }

# we_condition_is NAME TYPE "STATUS REASON"
we_condition_is() {
  [ "$(jp "we/$1" "{.status.conditions[?(@.type==\"$2\")].status} {.status.conditions[?(@.type==\"$2\")].reason}")" = "$3" ]
}

# we_condition_reason NAME TYPE REASON: condition TYPE of NAME is False with REASON.
we_condition_reason() {
  [ "$(jp "we/$1" "{.status.conditions[?(@.type==\"$2\")].status} {.status.conditions[?(@.type==\"$2\")].reason}")" = "False $3" ]
}

# npu_pod_unschedulable: an npu-enc pod is Pending with "Insufficient amd.com/npu"
# (its name goes to W_PENDING).
npu_pod_unschedulable() {
  W_PENDING=$(kcn get pods -l whisper.xdna.io/encoder=npu-enc \
    -o jsonpath='{range .items[*]}{.metadata.name} {.status.phase} {.status.conditions[?(@.type=="PodScheduled")].message}{"\n"}{end}' |
    awk '$2 == "Pending" && /Insufficient amd.com\/npu/ { print $1; exit }')
  [ -n "$W_PENDING" ]
}

# --- 5. faults --------------------------------------------------------------------------

# whisper_kubelet_restart restarts the kubelet and measures how long the node takes to
# advertise amd.com/npu again: the kubelet starts with the resource at 0 until the
# plugin re-registers (it watches kubelet.sock), then reports it in its next status.
whisper_kubelet_restart() {
  local regs before t0 t_plugin="" pods_before
  regs=$(plugin_metric xdna_device_plugin_registrations_total) || die "cannot read the device plugin's /metrics"
  pods_before=$(running_containers)
  before=$(utc_now)
  # Heartbeats have one-second resolution: restart in a later second than $before.
  wait_for "the clock to pass $before" 5 clock_past "$before"
  stop_daemon kubelet
  t0=$(now_ms)
  start_kubelet
  local deadline=$((SECONDS + E2E_TIMEOUT)) seen0="" s hb
  while :; do
    ((SECONDS < deadline)) || die "amd.com/npu not allocatable ${E2E_TIMEOUT}s after the kubelet restart ($(node_npu))"
    if [ -z "$t_plugin" ] && registered_since "$regs"; then
      t_plugin=$(now_ms)
    fi
    s=$(kc get node "$E2E_NAME" -o jsonpath='{.status.allocatable.amd\.com/npu} {.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].lastHeartbeatTime}' 2>/dev/null) || s=""
    read -r alloc ready hb <<<"$s"
    if [[ "$hb" > "$before" ]]; then
      [ "$alloc" = 0 ] && seen0=yes
      [ "$alloc" = 1 ] && [ "$ready" = True ] && [ -n "$t_plugin" ] && break
    fi
    sleep 0.25
  done
  local t1
  t1=$(now_ms)
  timing_add "kubelet restart -> plugin registered again" $((t_plugin - t0))
  timing_add "kubelet restart -> amd.com/npu allocatable again" $((t1 - t0))
  [ -z "$seen0" ] || log "(the node reported amd.com/npu allocatable 0 after the restart, before the plugin was back)"
  wait_for "device plugin ready after the kubelet restart" 60 daemonset_ready || die "the device plugin is not ready after the kubelet restart"
  # The node is Ready and the resource back before the new kubelet has synced its
  # pods (on a fast machine by seconds): exec needs the pod in the kubelet.
  wait_for "the restarted kubelet to know the node's pods" "$E2E_TIMEOUT" kubelet_has_pods ||
    die "the kubelet does not know every pod of the node ${E2E_TIMEOUT}s after its restart"
  # Running pods were left alone (same containers, no restart), and exec still works.
  [ "$(running_containers)" = "$pods_before" ] ||
    die "containers changed across the kubelet restart:
$pods_before
→
$(running_containers)"
  wait_for "exec into model-server after the kubelet restart" "$E2E_TIMEOUT" kcn exec model-server -- e2e-agent version ||
    die "exec into model-server fails after the kubelet restart"
}

# registered_since N: the device plugin has registered with a kubelet more than N
# times (a restart may cost it more than one registration).
registered_since() {
  local r
  r=$(plugin_metric xdna_device_plugin_registrations_total 2>/dev/null) && [ -n "$r" ] && ((r > $1))
}

# running_containers lists the CPU encoders' and the model server's containers with
# their restart counts.
running_containers() {
  kcn get pods -l 'app.kubernetes.io/component in (encoder),whisper.xdna.io/encoder in (enc-a,enc-b)'     -o jsonpath='{range .items[*]}{.metadata.name} {.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount}{"\n"}{end}'
  jp pod/model-server '{.metadata.name} {.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount}{"\n"}'
}

# whisper_device_removed: the device node disappears (driver unload) → the plugin marks
# the NPU unhealthy and allocatable drops to 0 (capacity stays); it comes back → 1.
whisper_device_removed() {
  timer_start "device node removed -> amd.com/npu allocatable 0"
  fake_npu_node_remove
  wait_for "amd.com/npu allocatable 0 (capacity 1)" "$E2E_TIMEOUT" npu_is 1/0 ||
    die "the node still advertises a healthy NPU after its device node was removed ($(node_npu))"
  timer_stop "device node removed -> amd.com/npu allocatable 0"
  # The plugin updates its metrics after it tells the kubelet: wait for them too.
  wait_for "devices_healthy 0" 30 plugin_metric_is 'xdna_device_plugin_devices_healthy' 0 ||
    die "the plugin's devices_healthy is $(plugin_metric xdna_device_plugin_devices_healthy), want 0"
  wait_for "'NPU unhealthy' in the plugin's log" 30 plugin_log_has "NPU unhealthy" ||
    die "the plugin's log has no 'NPU unhealthy' line: $(kcn logs "daemonset/$W_PLUGIN" 2>&1 | tail -20)"
  timer_start "device node restored -> amd.com/npu allocatable 1"
  fake_npu_node_add
  wait_for "amd.com/npu allocatable 1 again" "$E2E_TIMEOUT" npu_is 1/1 ||
    die "the node did not advertise the NPU again after its device node came back ($(node_npu))"
  timer_stop "device node restored -> amd.com/npu allocatable 1"
  wait_for "devices_healthy 1" 30 plugin_metric_is 'xdna_device_plugin_devices_healthy' 1 || die "the plugin's devices_healthy is $(plugin_metric xdna_device_plugin_devices_healthy), want 1"
}

# whisper_npu_sharing: helm upgrade to two contexts per NPU → the node advertises 2
# and the Pending NPU pod is scheduled onto the shared NPU.
whisper_npu_sharing() {
  timer_start "helm upgrade contextsPerNPU=2 -> amd.com/npu 2"
  w_helm upgrade "$W_RELEASE" "$REPO_ROOT/charts/xdna-whisper" -n "$W_NS" -f "$E2E_RUN/helm/values.yaml" \
    --set devicePlugin.contextsPerNPU=2 >>"$E2E_LOGS/helm.log" 2>&1 || { tail -20 "$E2E_LOGS/helm.log" >&2; die "helm upgrade failed"; }
  wait_for "amd.com/npu 2" "$E2E_TIMEOUT" npu_is 2/2 || die "the node does not advertise 2 slots after the upgrade ($(node_npu))"
  timer_stop "helm upgrade contextsPerNPU=2 -> amd.com/npu 2"
  wait_for "the Pending NPU pod scheduled" "$E2E_TIMEOUT" \
    kcn wait --for=condition=PodScheduled "pod/$W_PENDING" --timeout=2s || die "pod $W_PENDING stayed Pending with 2 NPU slots"
  wait_for "NFD contexts-per-npu=2" 30 grep -qx amd.com/npu.contexts-per-npu=2 "$W_NFD_DIR/xdna-npu" ||
    die "the NFD feature file does not say contexts-per-npu=2: $(cat "$W_NFD_DIR/xdna-npu")"
  log "with contextsPerNPU=2 both npu-enc pods are scheduled on the one NPU"
}

# whisper_garbage_collection: with the operator stopped, deleting the WhisperEncoders
# leaves their Deployments, ReplicaSets, pods, Services and the staging Job to the
# controller-manager's garbage collector; the weights record (no owner) stays.
whisper_garbage_collection() {
  kcn scale "deployment/$W_OPERATOR" --replicas 0 >/dev/null
  wait_for "operator stopped" "$E2E_TIMEOUT" no_operator_pods || die "the operator pod did not stop"
  local owned
  owned=$(kcn get deployments,replicasets,services,jobs,pods -o json |
    jq -r '.items[] | select(any(.metadata.ownerReferences[]?; .kind == "WhisperEncoder" or .kind == "Deployment" or .kind == "ReplicaSet" or .kind == "Job")) | .kind + "/" + .metadata.name' | sort)
  [ -n "$owned" ] || die "no objects owned by the WhisperEncoders before deleting them"
  timer_start "WhisperEncoders deleted -> owned objects collected"
  kcn delete we --all --wait=false >/dev/null
  wait_for "objects owned by the WhisperEncoders collected" "$E2E_TIMEOUT" nothing_left_of_encoders ||
    die "left after deleting the WhisperEncoders: $(left_of_encoders)"
  timer_stop "WhisperEncoders deleted -> owned objects collected"
  [ -n "$(kcn get configmaps -l app.kubernetes.io/component=weights-record -o name)" ] ||
    die "the weights record was deleted with the WhisperEncoders (it describes the cache and must stay)"
  log "garbage-collected: $(tr '\n' ' ' <<<"$owned")"
}

no_operator_pods() { [ -z "$(kcn get pods -l app.kubernetes.io/component=operator -o name)" ]; }

# left_of_encoders lists what the operator made for the WhisperEncoders and still exists.
left_of_encoders() {
  kcn get deployments,replicasets,services,jobs,pods -l app.kubernetes.io/managed-by=whisper-operator -o name
}
nothing_left_of_encoders() { [ -z "$(left_of_encoders)" ]; }

# --- 6. uninstall -----------------------------------------------------------------------

whisper_uninstall() {
  w_helm uninstall "$W_RELEASE" -n "$W_NS" >>"$E2E_LOGS/helm.log" 2>&1 || die "helm uninstall failed"
  kc get crd whisperencoders.whisper.xdna.io >/dev/null || die "helm uninstall removed the CRD (it must be kept)"
  ! kcn get pvc whisper-cache >/dev/null 2>&1 || die "helm uninstall left the cache claim whisper-cache"
  wait_for "device plugin gone" "$E2E_TIMEOUT" no_plugin_pods || die "the device plugin still runs after helm uninstall"
  wait_for "the NFD feature file removed" 30 test ! -e "$W_NFD_DIR/xdna-npu" || die "the device plugin left its NFD feature file behind"
  kc delete crd whisperencoders.whisper.xdna.io >/dev/null
  # The teardown deletes the namespace and waits for its pods.
  kc delete namespace "$W_NS" --wait=false >/dev/null
  kc delete pv e2e-whisper-cache e2e-whisper-models --wait=false >/dev/null
  kc label node "$E2E_NAME" feature.node.kubernetes.io/pci-1180_1022_1502.present- >/dev/null
}

no_plugin_pods() { [ -z "$(kcn get pods -l app.kubernetes.io/component=device-plugin -o name)" ]; }
