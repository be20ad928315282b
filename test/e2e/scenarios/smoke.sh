# shellcheck shell=bash
# Smoke scenario: our images run as pods under the "restricted" Pod Security
# Standard; a pod goes Ready behind HTTP probes; logs and exec work through the
# API server and the kubelet; pod networking, Services (kube-proxy) and the
# in-cluster API path work. (The whisper scenario restarts the kubelet and checks
# that running pods are not disturbed; `e2e.sh restart-kubelet` does it by hand.)

SMOKE_NS=e2e-smoke

# restricted_container prints the securityContext the restricted standard requires.
restricted_container() {
  cat <<YAML
      securityContext:
        runAsNonRoot: true
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {drop: [ALL]}
        seccompProfile: {type: RuntimeDefault}
YAML
}

# agent_pod NAME prints a pod running our e2e-agent image with HTTP probes.
agent_pod() {
  cat <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: $SMOKE_NS, labels: {app: $1}}
spec:
  terminationGracePeriodSeconds: 5
  containers:
    - name: agent
      image: $(image_ref e2e-agent)
      imagePullPolicy: Never
      args: [serve, -listen, ":8080"]
      ports: [{containerPort: 8080, name: http}]
      readinessProbe: {httpGet: {path: /readyz, port: http}, periodSeconds: 1}
      livenessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 5}
$(restricted_container)
YAML
}

scenario_smoke() {
  kc create namespace "$SMOKE_NS" >/dev/null
  kc label namespace "$SMOKE_NS" pod-security.kubernetes.io/enforce=restricted >/dev/null
  wait_for "service account $SMOKE_NS/default" 60 kc -n "$SMOKE_NS" get serviceaccount default

  timer_start "first pod Ready (create -> Ready)"
  agent_pod agent | kc apply -f - >/dev/null
  kc apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata: {name: agent, namespace: $SMOKE_NS}
spec:
  selector: {app: agent}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: encoder-version, namespace: $SMOKE_NS}
spec:
  restartPolicy: Never
  containers:
    - name: encoder
      image: $(image_ref whisper-encoder)
      imagePullPolicy: Never
      args: [version]
$(restricted_container)
YAML
  wait_for "pod agent Ready" "$E2E_TIMEOUT" kc -n "$SMOKE_NS" wait --for=condition=Ready pod/agent --timeout=2s
  timer_stop "first pod Ready (create -> Ready)"
  agent_pod client | kc apply -f - >/dev/null

  smoke_encoder_image
  smoke_logs_and_exec
  smoke_network
  # Deleted in the background; the teardown waits for every pod to be gone.
  kc delete namespace "$SMOKE_NS" --wait=false >/dev/null
}

# smoke_encoder_image: the whisper-encoder image runs `version` to completion,
# as the non-root user of the image, and prints the build's identity.
smoke_encoder_image() {
  wait_for "pod encoder-version Succeeded" "$E2E_TIMEOUT" \
    kc -n "$SMOKE_NS" wait --for=jsonpath='{.status.phase}'=Succeeded pod/encoder-version --timeout=2s
  local got want
  got=$(kc -n "$SMOKE_NS" logs encoder-version)
  want=$("$E2E_BIN/whisper-encoder" --version)
  [ "$got" = "$want" ] || die "encoder-version logged '$got', want '$want' (the binary in $E2E_BIN)"
  log "whisper-encoder image: $got"
}

# smoke_logs_and_exec: logs and exec go API server → kubelet → containerd.
smoke_logs_and_exec() {
  grep -q 'serving on' <<<"$(kc -n "$SMOKE_NS" logs agent)" || die "agent's log lacks its startup line: $(kc -n "$SMOKE_NS" logs agent)"
  local v
  v=$(kc -n "$SMOKE_NS" exec agent -- e2e-agent version)
  [ "$v" = "$("$E2E_BIN/e2e-agent" version)" ] || die "exec e2e-agent version in the pod said '$v'"
  local who
  who=$(kc -n "$SMOKE_NS" exec agent -- e2e-agent get http://127.0.0.1:8080/whoami)
  grep -q '"uid":65532,"gid":65532' <<<"$who" || die "agent does not run as the image's user 65532:65532: $who"
  log "logs and exec work; the agent runs as 65532:65532"
}

# smoke_network: node → pod IP (CNI bridge), node → Service (kube-proxy),
# pod → Service → other pod, pod → API server through the kubernetes Service.
smoke_network() {
  wait_for "pod client Ready" "$E2E_TIMEOUT" kc -n "$SMOKE_NS" wait --for=condition=Ready pod/client --timeout=2s
  local pod_ip svc_ip
  pod_ip=$(kc -n "$SMOKE_NS" get pod agent -o jsonpath='{.status.podIP}')
  svc_ip=$(kc -n "$SMOKE_NS" get service agent -o jsonpath='{.spec.clusterIP}')
  agent get "http://$pod_ip:8080/healthz" >/dev/null || die "node cannot reach pod agent at $pod_ip"
  wait_for "Service agent ($svc_ip) from the node" 30 agent get -timeout 2s "http://$svc_ip/version" ||
    die "node cannot reach Service agent at $svc_ip (kube-proxy)"
  kc -n "$SMOKE_NS" exec client -- e2e-agent get -timeout 5s "http://$svc_ip/version" >/dev/null ||
    die "pod client cannot reach Service agent at $svc_ip"
  local ver
  ver=$(kc -n "$SMOKE_NS" exec client -- e2e-agent get -in-cluster /version) ||
    die "pod client cannot reach the API server through the kubernetes Service"
  grep -q '"gitVersion"' <<<"$ver" || die "in-cluster /version answered: $ver"
  log "pod $pod_ip and Service $svc_ip reachable from node and pod; API server reachable from a pod"
}
