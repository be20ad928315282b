#!/usr/bin/env bash
# The transcription server's memory benchmark: `whisper-encoder serve` on a
# staged whole model, CONCURRENCY OpenAI transcription requests at once over
# HTTP (multipart, SECONDS of speech each, every window forced to
# FORCE_TOKENS tokens so random weights cannot shorten the work), then the
# server's peak resident set (VmHWM). Usage:
#   hack/bench-transcribe-server.sh STAGED_DIR [CONCURRENCY] [SECONDS] [FORCE_TOKENS] [-- SERVE_FLAGS...]
# Run from the repository root after `make build bench-tool`.
set -euo pipefail
dir=$1
conc=${2:-16}
seconds=${3:-60}
force=${4:-224}
shift $(($# < 4 ? $# : 4))
[ "${1:-}" = -- ] && shift
bin=bin/whisper-encoder
log=$(mktemp)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT

# Room for every request at once: CONCURRENCY transcriptions, their uploads and
# decoded audio; --decode-memory stays at its default unless SERVE_FLAGS set it.
"$bin" serve --weights "$dir" --backend cpu --http-addr 127.0.0.1:0 --grpc-addr 127.0.0.1:0 \
  --max-transcriptions "$conc" --bench-force-tokens "$force" --log-level info "$@" 2>"$log" &
pid=$!
for _ in $(seq 600); do
  grep -q '"msg":"ready"' "$log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.2
done
http=$(sed -n 's/.*"msg":"serving","http":"\([^"]*\)".*/\1/p' "$log")
grep '"msg":"memory bound"' "$log"
bin/whisper-bench serve-transcribe --target "http://$http" --pid "$pid" --concurrency "$conc" --seconds "$seconds"
kill -TERM "$pid"
wait "$pid" || true
