# shellcheck shell=bash
# Autoscaling proven, not assumed (issue 13): a real Prometheus and a real KEDA (operator
# and metrics API server), both built from the Go module proxy by hack/autoscale-bins.sh,
# run as processes in the node's network namespace (like the control plane). The chart is
# installed with encoder.autoscaler.kind keda, so the operator gives a WhisperEncoder with
# spec.autoscaling a ScaledObject; KEDA turns it into an HPA on the external metric
# (served through the APIService v1beta1.external.metrics.k8s.io), whose value is
# Prometheus' sum of the encoder pods' whisper_encoder_queue_depth. Load from
# `whisper-encoder loadtest` keeps the queue non-empty: the Deployment must scale up;
# after the load stops it must come back to minReplicas. Both times are recorded.
#
# Prometheus discovers the encoder pods through the encoder Services' EndpointSlices
# (kubernetes SD) and labels the series namespace/service/pod as the chart's
# ServiceMonitor would. The helm install, storage and uninstall are the whisper
# scenario's (scenarios/whisper.sh).
#
#   E2E_SCENARIOS="smoke autoscale" make e2e

# shellcheck source=whisper.sh
source "$E2E_DIR/scenarios/whisper.sh"

AS_NAME=auto
AS_KEDA_NS=keda
AS_PROM_ADDR=$E2E_NODE_IP:9091
AS_ADAPTER_PORT=6444
AS_GRPC_ADDR=127.0.0.1:9666
AS_DIR=$E2E_ROOT/autoscale
AS_MAX=3
AS_TARGET=2
AS_WINDOW=15          # spec.autoscaling.scaleDownStabilizationSeconds
AS_LOAD_CLIENTS=24    # loadtest concurrency: with maxBatch 1, ~23 requests queue at one pod
AS_QUERY="sum(whisper_encoder_queue_depth{namespace=\"$W_NS\",service=\"$AS_NAME\"})"

scenario_autoscale() {
  HELM_BIN=$("$REPO_ROOT/hack/helm.sh")
  as_bins
  # After other scenarios: the whisper namespace and volumes must be gone before they are made again.
  wait_for "namespace $W_NS gone" "$E2E_TIMEOUT" as_whisper_gone || die "namespace $W_NS still exists"
  as_keda_crds
  as_prometheus
  as_keda
  cat >"$AS_DIR/values.yaml" <<YAML
encoder:
  autoscaler: {kind: keda, prometheusAddress: "http://$AS_PROM_ADDR"}
YAML
  W_EXTRA_VALUES=$AS_DIR/values.yaml whisper_install
  as_encoder
  as_scale_up
  as_scale_down
  as_delete
  whisper_uninstall
  as_stop
}

as_whisper_gone() { ! kc get namespace "$W_NS" >/dev/null 2>&1 && ! kc get pv e2e-whisper-cache e2e-whisper-models >/dev/null 2>&1; }

# as_bins builds (or finds cached) Prometheus, KEDA and KEDA's CRDs.
as_bins() {
  local out
  timer_start "Prometheus + KEDA build (hack/autoscale-bins.sh; cached after the first)"
  out=$("$REPO_ROOT/hack/autoscale-bins.sh" prometheus keda-operator keda-adapter keda-crds) ||
    die "hack/autoscale-bins.sh failed"
  timer_stop "Prometheus + KEDA build (hack/autoscale-bins.sh; cached after the first)"
  { read -r AS_PROM; read -r AS_KEDA_OPERATOR; read -r AS_KEDA_ADAPTER; read -r AS_KEDA_CRDS; } <<<"$out"
  mkdir -p "$AS_DIR"
}

# as_keda_crds installs KEDA's CRDs of the same version (server-side: ScaledJob's is too
# large for the last-applied annotation).
as_keda_crds() {
  kc apply --server-side -f "$AS_KEDA_CRDS" >/dev/null || die "cannot install KEDA's CRDs from $AS_KEDA_CRDS"
  wait_for "CRD scaledobjects.keda.sh established" 60 \
    kc wait --for=condition=Established crd/scaledobjects.keda.sh --timeout=2s
}

# as_prometheus runs Prometheus scraping every encoder Service's http port, every 2 s.
as_prometheus() {
  kubeconfig "$AS_DIR/prometheus.kubeconfig" admin
  cat >"$AS_DIR/prometheus.yml" <<YAML
global: {scrape_interval: 2s, evaluation_interval: 2s}
scrape_configs:
  - job_name: whisper-encoders
    kubernetes_sd_configs:
      - role: endpointslice
        kubeconfig_file: $AS_DIR/prometheus.kubeconfig
        namespaces: {names: [$W_NS]}
    relabel_configs:
      # What the chart's ServiceMonitor selects: the operator's encoder Services, port http.
      - {source_labels: [__meta_kubernetes_service_label_app_kubernetes_io_name], regex: whisper-encoder, action: keep}
      - {source_labels: [__meta_kubernetes_service_label_app_kubernetes_io_component], regex: encoder, action: keep}
      - {source_labels: [__meta_kubernetes_endpointslice_port_name], regex: http, action: keep}
      - {source_labels: [__meta_kubernetes_namespace], target_label: namespace}
      - {source_labels: [__meta_kubernetes_service_name], target_label: service}
      - {source_labels: [__meta_kubernetes_pod_name], target_label: pod}
YAML
  start_daemon prometheus "$AS_PROM" --config.file "$AS_DIR/prometheus.yml" \
    --storage.tsdb.path "$AS_DIR/prometheus-data" --web.listen-address "$AS_PROM_ADDR" \
    --storage.tsdb.retention.time 1h --log.level warn
  wait_for "Prometheus ready" 60 agent get -timeout 2s "http://$AS_PROM_ADDR/-/ready" ||
    die "Prometheus did not become ready (log: $E2E_LOGS/prometheus.log)"
}

# as_keda runs KEDA's operator and metrics API server with mTLS between them (certificates
# from the node's CA) and registers the metrics server as external.metrics.k8s.io.
as_keda() {
  local certs=$AS_DIR/keda-certs
  pki_cert keda "/CN=keda" "serverAuth, clientAuth" \
    "DNS:keda-operator.$AS_KEDA_NS.svc.cluster.local,DNS:keda-metrics-apiserver.$AS_KEDA_NS.svc,DNS:localhost,IP:127.0.0.1,IP:$E2E_NODE_IP"
  mkdir -p "$certs" && chmod 0700 "$certs"
  cp "$PKI/ca.crt" "$certs/ca.crt" && cp "$PKI/keda.crt" "$certs/tls.crt" && cp "$PKI/keda.key" "$certs/tls.key"
  kubeconfig "$AS_DIR/keda.kubeconfig" admin
  kc create namespace "$AS_KEDA_NS" >/dev/null
  local env=(env KUBECONFIG="$AS_DIR/keda.kubeconfig" POD_NAMESPACE="$AS_KEDA_NS" KEDA_CLUSTER_OBJECT_NAMESPACE="$AS_KEDA_NS" WATCH_NAMESPACE="")
  start_daemon keda-operator "${env[@]}" "$AS_KEDA_OPERATOR" --cert-dir "$certs" \
    --metrics-service-bind-address "$AS_GRPC_ADDR" --metrics-bind-address 127.0.0.1:18080 \
    --health-probe-bind-address 127.0.0.1:18081 --zap-log-level info
  wait_for "KEDA operator healthy" 60 agent get -timeout 2s http://127.0.0.1:18081/healthz ||
    die "the KEDA operator did not become healthy (log: $E2E_LOGS/keda-operator.log)"
  start_daemon keda-adapter "${env[@]}" "$AS_KEDA_ADAPTER" --cert-dir "$certs" \
    --tls-cert-file "$certs/tls.crt" --tls-private-key-file "$certs/tls.key" \
    --secure-port "$AS_ADAPTER_PORT" --bind-address "$E2E_NODE_IP" --port 18082 \
    --metrics-service-address "$AS_GRPC_ADDR" \
    --authentication-kubeconfig "$AS_DIR/keda.kubeconfig" --authorization-kubeconfig "$AS_DIR/keda.kubeconfig" \
    --lister-kubeconfig "$AS_DIR/keda.kubeconfig" --zap-log-level info
  kc apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata: {name: keda-metrics-apiserver, namespace: $AS_KEDA_NS}
spec:
  ports: [{name: https, port: 443, targetPort: $AS_ADAPTER_PORT}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: keda-metrics-apiserver
  namespace: $AS_KEDA_NS
  labels: {kubernetes.io/service-name: keda-metrics-apiserver}
addressType: IPv4
ports: [{name: https, port: $AS_ADAPTER_PORT, protocol: TCP}]
endpoints: [{addresses: ["$E2E_NODE_IP"], conditions: {ready: true}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.external.metrics.k8s.io}
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  service: {name: keda-metrics-apiserver, namespace: $AS_KEDA_NS, port: 443}
  caBundle: $(base64 -w0 "$PKI/ca.crt")
YAML
  wait_for "APIService v1beta1.external.metrics.k8s.io Available" "$E2E_TIMEOUT" \
    kc wait --for=condition=Available apiservice/v1beta1.external.metrics.k8s.io --timeout=2s ||
    { kc get apiservice v1beta1.external.metrics.k8s.io -o yaml >&2; die "KEDA's metrics API server is not available (log: $E2E_LOGS/keda-adapter.log)"; }
}

# as_encoder applies the autoscaled WhisperEncoder and checks what the operator and KEDA made.
as_encoder() {
  timer_start "autoscaled WhisperEncoder apply -> Ready"
  kc apply -f - >/dev/null <<YAML
apiVersion: whisper.xdna.io/v1alpha1
kind: WhisperEncoder
metadata: {name: $AS_NAME, namespace: $W_NS}
spec:
  model:
    source:
      pvc: {claimName: e2e-models, path: $W_MODEL}
  backend: cpu
  serving: {maxBatch: 1, maxQueue: 256}
  autoscaling: {minReplicas: 1, maxReplicas: $AS_MAX, targetQueueDepth: $AS_TARGET, scaleDownStabilizationSeconds: $AS_WINDOW}
  resources:
    requests: {cpu: 50m, memory: 64Mi}
    limits: {memory: 512Mi}
YAML
  wait_for "WhisperEncoder $AS_NAME Ready" 300 we_phase_is "$AS_NAME" Ready ||
    { kcn describe we "$AS_NAME" >&2; kcn get pods,jobs -o wide >&2; die "WhisperEncoder $AS_NAME not Ready"; }
  timer_stop "autoscaled WhisperEncoder apply -> Ready"
  local q
  q=$(jp "scaledobject/$AS_NAME" '{.spec.triggers[0].metadata.query}') || die "the operator made no ScaledObject $AS_NAME"
  [ "$q" = "$AS_QUERY" ] || die "ScaledObject $AS_NAME queries '$q', want '$AS_QUERY'"
  kcn get hpa "$AS_NAME" >/dev/null 2>&1 && die "the operator made its own HPA besides the ScaledObject"
  wait_for "ScaledObject $AS_NAME Ready" "$E2E_TIMEOUT" as_scaledobject_ready ||
    { kcn get scaledobject "$AS_NAME" -o yaml >&2; die "KEDA did not make ScaledObject $AS_NAME Ready (log: $E2E_LOGS/keda-operator.log)"; }
  wait_for "KEDA's HPA keda-hpa-$AS_NAME" 60 kcn get hpa "keda-hpa-$AS_NAME" ||
    die "KEDA made no HPA for $AS_NAME"
  # The whole chain answers before any load: Prometheus has the series, the external metric is 0.
  wait_for "Prometheus scrapes $AS_NAME" 60 as_prom_has_series ||
    die "Prometheus has no queue-depth series of $AS_NAME (targets: $(as_prom_get /api/v1/targets | jq -c '[.data.activeTargets[] | {scrapeUrl, health, lastError}]'))"
  wait_for "external metric served for $AS_NAME" 60 as_external_metric ||
    die "the external metrics API serves nothing for $AS_NAME (log: $E2E_LOGS/keda-adapter.log)"
  log "ScaledObject $AS_NAME Ready; Prometheus: $AS_QUERY = $(as_queue_sum); external metric: $(as_external_metric)"
}

as_scaledobject_ready() {
  [ "$(jp "scaledobject/$AS_NAME" '{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

# as_prom_get PATH_AND_QUERY: a GET against Prometheus' API from the node's netns.
as_prom_get() { innet curl -sfS --max-time 3 "http://$AS_PROM_ADDR$1"; }

# as_queue_sum prints the query's current value (fails with no series).
as_queue_sum() {
  local v
  v=$(innet curl -sfS --max-time 3 -G --data-urlencode "query=$AS_QUERY" "http://$AS_PROM_ADDR/api/v1/query" |
    jq -r '.data.result[0].value[1] // empty') || return 1
  [ -n "$v" ] && echo "$v"
}
as_prom_has_series() { as_queue_sum >/dev/null; }

# as_external_metric prints the value KEDA's metrics server gives the HPA (one item).
as_external_metric() {
  local metric v
  metric=$(jp "hpa/keda-hpa-$AS_NAME" '{.spec.metrics[0].external.metric.name}') || return 1
  [ -n "$metric" ] || return 1
  v=$(kc get --raw "/apis/external.metrics.k8s.io/v1beta1/namespaces/$W_NS/$metric?labelSelector=scaledobject.keda.sh%2Fname%3D$AS_NAME" |
    jq -r '.items[0].value // empty') || return 1
  [ -n "$v" ] && echo "$v"
}

# as_replicas prints the Deployment's desired replica count (what the HPA sets).
as_replicas() { jp "deployment/$AS_NAME" '{.spec.replicas}'; }
as_replicas_above_1() { local r; r=$(as_replicas) && [ "${r:-0}" -gt 1 ]; }
as_replicas_is_1() { [ "$(as_replicas)" = 1 ]; }

# as_scale_up drives load at the encoder's Service until the HPA scales the Deployment up.
as_scale_up() {
  local ip
  ip=$(jp "service/$AS_NAME" '{.spec.clusterIP}')
  # nsenter (no --fork) execs, so $! is the load generator itself (not a subshell: stopping
  # that would leave the load running).
  nsenter --net="$NETNS" -- "$E2E_BIN/whisper-encoder" loadtest --target "http://$ip:8080" \
    --concurrency "$AS_LOAD_CLIENTS" --duration 10m --timeout 2m >"$E2E_LOGS/autoscale-load.log" 2>&1 &
  AS_LOAD_PID=$!
  timer_start "autoscale: load starts -> Deployment replicas > 1 (KEDA)"
  if ! wait_for "replicas > 1 under load" 240 as_replicas_above_1; then
    log "queue sum $(as_queue_sum || echo none), external metric $(as_external_metric || echo none)"
    kcn describe hpa "keda-hpa-$AS_NAME" >&2 || true
    as_stop_load
    die "the Deployment did not scale up under load (replicas $(as_replicas))"
  fi
  timer_stop "autoscale: load starts -> Deployment replicas > 1 (KEDA)"
  log "scaled up to $(as_replicas) replicas (queue sum $(as_queue_sum || echo ?), external metric $(as_external_metric || echo ?))"
  # The new pods serve: they become Ready (the Deployment's status reaches its spec).
  timer_start "autoscale: scaled up -> new encoder pods Ready"
  wait_for "scaled-up pods Ready" 180 as_pods_ready || die "the scaled-up encoder pods did not become Ready"
  timer_stop "autoscale: scaled up -> new encoder pods Ready"
}

as_pods_ready() {
  local r
  r=$(jp "deployment/$AS_NAME" '{.spec.replicas}/{.status.readyReplicas}')
  [ "${r%/*}" -gt 1 ] && [ "${r%/*}" = "${r#*/}" ]
}

as_stop_load() {
  [ -n "${AS_LOAD_PID:-}" ] || return 0
  stop_pid "$AS_LOAD_PID" 10
  AS_LOAD_PID=
}

# as_scale_down stops the load and waits for the Deployment to come back to minReplicas.
as_scale_down() {
  as_stop_load
  timer_start "autoscale: load stops -> replicas back to 1 (window ${AS_WINDOW}s)"
  wait_for "replicas back to 1" 300 as_replicas_is_1 ||
    { kcn describe hpa "keda-hpa-$AS_NAME" >&2 || true; die "the Deployment did not scale down after the load (replicas $(as_replicas))"; }
  timer_stop "autoscale: load stops -> replicas back to 1 (window ${AS_WINDOW}s)"
  grep -E 'requests in' "$E2E_LOGS/autoscale-load.log" | while read -r l; do log "load: $l"; done || true
}

# as_delete deletes the WhisperEncoder: its ScaledObject goes with it (owner reference),
# and KEDA removes its HPA.
as_delete() {
  kcn delete we "$AS_NAME" >/dev/null
  wait_for "objects owned by $AS_NAME collected" "$E2E_TIMEOUT" nothing_left_of_encoders ||
    die "left after deleting WhisperEncoder $AS_NAME: $(left_of_encoders)"
  wait_for "ScaledObject and KEDA's HPA gone" "$E2E_TIMEOUT" as_keda_objects_gone ||
    die "left after deleting WhisperEncoder $AS_NAME: $(kcn get scaledobjects,hpa -o name)"
}

as_keda_objects_gone() { [ -z "$(kcn get scaledobjects,hpa -o name)" ]; }

# as_stop unregisters the metrics API (before its server goes: a dead APIService would stall
# namespace deletion), stops KEDA and Prometheus, and removes KEDA's namespace and CRDs.
as_stop() {
  kc delete apiservice v1beta1.external.metrics.k8s.io >/dev/null
  stop_daemons keda-adapter keda-operator prometheus
  kc delete namespace "$AS_KEDA_NS" --wait=false >/dev/null
  kc delete -f "$AS_KEDA_CRDS" >/dev/null
}
