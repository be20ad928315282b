#!/usr/bin/env bash
# The serving benchmark: `whisper-encoder serve` on loopback driven by
# `whisper-encoder loadtest` with real speech at concurrency 1, 4, 16 and 64,
# then the same encoder in-process (same threads, same batch) as the reference
# for the saturation ratio, side by side in one run. Usage:
#   [MAX_QUEUE=8] hack/bench-server.sh STAGED_DIR [THREADS] [MAX_BATCH] [DURATION]
# The queue bound sets the worst accepted latency: about (MAX_QUEUE + MAX_BATCH)
# windows at the saturation throughput.
# Run from the repository root after `make build`.
set -euo pipefail
dir=$1
threads=${2:-2}
batch=${3:-1}
duration=${4:-30s}
bin=bin/whisper-encoder
log=$(mktemp)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT

# Ports chosen by the kernel; the server logs them.
"$bin" serve --weights "$dir" --backend cpu --threads "$threads" --max-batch "$batch" \
  --http-addr 127.0.0.1:0 --grpc-addr 127.0.0.1:0 --max-queue "${MAX_QUEUE:-8}" --log-level info 2>"$log" &
pid=$!
for _ in $(seq 600); do
  grep -q '"msg":"ready"' "$log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.2
done
http=$(sed -n 's/.*"msg":"serving","http":"\([^"]*\)".*/\1/p' "$log")
grpc=$(sed -n 's/.*"msg":"serving","http":"[^"]*","grpc":"\([^"]*\)".*/\1/p' "$log")
echo "== HTTP POST /v1/encode, audio (espeak-ng clip, 22.05 kHz WAV; front end in the server) =="
"$bin" loadtest --target "http://$http" --concurrency 1,4,16,64 --duration "$duration"
echo "== gRPC Encode, log-mel (jfk, 3000 frames; encoder only), with the in-process reference =="
"$bin" loadtest --target "$grpc" --metrics "http://$http/metrics" --file testdata/mel/jfk_80.npy --concurrency 1,4,16,64 --duration "$duration" \
  --bench-weights "$dir" --bench-threads "$threads" --bench-batch "$batch"
kill -TERM "$pid"
wait "$pid"
echo "server exit status $? after SIGTERM; last log lines:"
tail -n 2 "$log"
