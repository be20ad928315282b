#!/usr/bin/env bash
# Regenerates the committed audio fixtures in testdata/audio/ with real tools:
# sox (decoding/encoding WAV and FLAC, via libsndfile/libFLAC) and espeak-ng
# (speech synthesis). Run from the repository root:
#   bash testdata/gen/audio_fixtures.sh
# Needs ../shared/data/whisper/jfk.flac and the Debian packages sox,
# libsox-fmt-all (FLAC support) and espeak-ng.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=../shared/data/whisper/jfk.flac
out=testdata/audio
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One second of JFK (3.0 s to 4.0 s), 44.1 kHz stereo, in every container and
# sample encoding the decoder accepts; sox decodes the FLAC source itself, so
# each file is an independent rendering of the same samples.
sox "$src" -b 24 "$tmp/jfk_1s_s24.flac" trim 3 1
sox "$src" -b 24 -e signed-integer "$tmp/jfk_1s_s24.wav" trim 3 1
sox "$src" -b 16 -e signed-integer --no-dither "$tmp/jfk_1s_s16.wav" trim 3 1
sox "$src" -b 32 -e floating-point "$tmp/jfk_1s_f32.wav" trim 3 1

# A real-speech clip the project ships (for the demo and service tests),
# synthesized at espeak-ng's native 22.05 kHz so the resampler is exercised.
espeak-ng -v en-us -s 150 -w "$tmp/speech_22k.wav" \
  "The encoder turns thirty seconds of speech into fifteen hundred vectors. It runs on the neural processing unit when there is one."

# The speech clip is embedded in the binary (encoder/bundled) so the demo runs anywhere.
mv "$tmp/speech_22k.wav" "$(dirname "$0")/../../encoder/bundled/speech_22k.wav"
for f in "$tmp"/*; do mv "$f" "$out/"; done
ls -l "$out" "$(dirname "$0")/../../encoder/bundled/speech_22k.wav"
