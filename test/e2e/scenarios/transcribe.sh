# shellcheck shell=bash
# Transcription end to end (issue 14): a WhisperEncoder whose source is a WHOLE Whisper
# model in Hugging Face's layout (a directory on a PVC) is staged by the operator's real
# Job, reaches Ready saying it can transcribe (status.capabilities, the TASKS column),
# and the official OpenAI Go SDK (github.com/openai/openai-go/v3, test/openai's
# cmd/e2e-transcribe, run in the node's network namespace) transcribes jfk.flac through
# its Service: 200 with the text, verbose_json segments, OpenAI's error object (400) for
# an empty file — each answer equal to what the Transcriber gives in process over the
# same staged files.
#
# The model is testdata/models/hf-micro (seeded random weights) with its text context cut
# to 48 tokens (written at scenario start: converttest.ShortContext), so that greedy
# decoding passes Whisper's fallback thresholds: a server samples at temperatures > 0
# with its own random seed, so only temperature-0 answers can be compared. The helm
# install, model storage and uninstall are the whisper scenario's (scenarios/whisper.sh).
#
#   E2E_SCENARIOS="smoke transcribe" make e2e

# shellcheck source=whisper.sh
source "$E2E_DIR/scenarios/whisper.sh"

TX_NAME=tx
TX_MODEL=hf-micro-short
TX_TEXT_CONTEXT=48
TX_AUDIO=${TX_AUDIO:-$REPO_ROOT/../shared/data/whisper/jfk.flac}
TX_CLIENT=$E2E_BIN/e2e-transcribe

scenario_transcribe() {
  HELM_BIN=$("$REPO_ROOT/hack/helm.sh")
  [ -f "$TX_AUDIO" ] || die "no speech clip at $TX_AUDIO (set TX_AUDIO to a WAV or FLAC file)"
  tx_client_build
  # After the whisper scenario: its namespace and volumes must be gone before they are made again.
  wait_for "namespace $W_NS gone" "$E2E_TIMEOUT" tx_namespace_gone || die "namespace $W_NS still exists"
  whisper_install
  "$TX_CLIENT" fixture -from "$REPO_ROOT/testdata/models/hf-micro" -to "$W_STORE/models/$TX_MODEL" \
    -text-context "$TX_TEXT_CONTEXT" || die "cannot write the model $W_STORE/models/$TX_MODEL"
  tx_encoder
  tx_openai
  tx_delete
  whisper_uninstall
}

# tx_delete deletes the WhisperEncoder and waits for what it owned to be collected
# (its pod holds the cache claim, which helm uninstall must be able to delete).
tx_delete() {
  timer_start "whole-model WE deleted -> owned objects collected"
  kcn delete we "$TX_NAME" >/dev/null
  wait_for "objects owned by $TX_NAME collected" "$E2E_TIMEOUT" nothing_left_of_encoders ||
    die "left after deleting WhisperEncoder $TX_NAME: $(left_of_encoders)"
  timer_stop "whole-model WE deleted -> owned objects collected"
}

tx_namespace_gone() { ! kc get namespace "$W_NS" >/dev/null 2>&1 && ! kc get pv e2e-whisper-cache e2e-whisper-models >/dev/null 2>&1; }

# tx_client_build builds the OpenAI client (module test/openai) on the host.
tx_client_build() {
  timer_start "OpenAI client build (go build, test/openai)"
  (cd "$REPO_ROOT/test/openai" && go build -o "$TX_CLIENT" ./cmd/e2e-transcribe) \
    >"$E2E_LOGS/transcribe-build.log" 2>&1 || { cat "$E2E_LOGS/transcribe-build.log" >&2; die "cannot build $TX_CLIENT"; }
  timer_stop "OpenAI client build (go build, test/openai)"
}

# tx_encoder applies the whole-model WhisperEncoder and checks its staging and status.
tx_encoder() {
  timer_start "whole-model WhisperEncoder apply -> Ready"
  kc apply -f - >/dev/null <<YAML
apiVersion: whisper.xdna.io/v1alpha1
kind: WhisperEncoder
metadata: {name: $TX_NAME, namespace: $W_NS}
spec:
  model:
    source:
      pvc: {claimName: e2e-models, path: $TX_MODEL}
  backend: cpu
  replicas: 1
  resources:
    requests: {cpu: 50m, memory: 64Mi}
    limits: {memory: 512Mi}
YAML
  wait_for "WhisperEncoder $TX_NAME Ready" 300 we_phase_is "$TX_NAME" Ready ||
    { kcn describe we "$TX_NAME" >&2; kcn get pods,jobs -o wide >&2; die "WhisperEncoder $TX_NAME not Ready"; }
  timer_stop "whole-model WhisperEncoder apply -> Ready"
  local job
  job=$(kcn get jobs -l app.kubernetes.io/component=staging -o jsonpath='{.items[*].metadata.name}')
  [[ "$job" =~ ^[^\ ]+$ ]] || die "staging Jobs in $W_NS: '$job', want exactly one"
  timing_add "whole-model staging Job (1 s resolution)" "$(job_seconds "$job")000"
  tx_staged "$job"
  local caps
  caps=$(jp "we/$TX_NAME" '{.status.capabilities.encode} {.status.capabilities.transcribe} {.status.capabilities.summary}')
  [ "$caps" = "true true encode,transcribe" ] ||
    die "$TX_NAME: status.capabilities says '$caps', want 'true true encode,transcribe' (encode transcribe summary)"
  whisper_status_ready "$TX_NAME" cpu 1 encode,transcribe
}

# tx_staged JOB: Job JOB ran `whisper-encoder stage` on the model directory and left
# encoder, decoder, tokenizer and generation config in the cache volume.
tx_staged() {
  local key pod cmd f
  key=$(jp "we/$TX_NAME" '{.status.weights.key}')
  [ ${#key} = 40 ] || die "$TX_NAME: status.weights.key '$key', want 40 hex digits"
  pod=$(kcn get pods -l "job-name=$1" -o jsonpath='{.items[0].metadata.name}')
  cmd=$(jp "pod/$pod" '{.spec.containers[0].command} {.spec.containers[0].args}')
  grep -q '"whisper-encoder".*"stage"' <<<"$cmd" || die "staging pod $pod runs $cmd, want whisper-encoder stage"
  for f in model.safetensors decoder.safetensors config.json manifest.json hf/tokenizer.json hf/generation_config.json; do
    [ -s "$W_STORE/cache/$key/$f" ] || die "the cache volume has no $key/$f (has: $(cd "$W_STORE/cache/$key" && find . -type f | tr '\n' ' '))"
  done
  TX_WEIGHTS=$W_STORE/cache/$key
  log "Job $1 staged the whole model as $key ($(du -sk "$TX_WEIGHTS" | cut -f1) kB)"
}

# tx_openai runs the OpenAI client against the Service from the node's network namespace.
tx_openai() {
  local ip key
  ip=$(jp "service/$TX_NAME" '{.spec.clusterIP}')
  key=$(jp "we/$TX_NAME" '{.status.weights.key}')
  timer_start "OpenAI SDK through the Service (+ in-process reference)"
  innet "$TX_CLIENT" -base-url "http://$ip:8080/v1" -model-id "$key" -weights "$TX_WEIGHTS" -audio "$TX_AUDIO" \
    >"$E2E_LOGS/transcribe.log" 2>&1 || { cat "$E2E_LOGS/transcribe.log" >&2; die "transcription through Service $TX_NAME ($ip:8080) failed"; }
  timer_stop "OpenAI SDK through the Service (+ in-process reference)"
  while read -r line; do log "$line"; done <"$E2E_LOGS/transcribe.log"
}
