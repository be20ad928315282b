package main

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// TestServeDecoderWeights: serve refuses an unknown --decoder-weights with
// the accepted names, and transcribes with --decoder-weights int8.
func TestServeDecoderWeights(t *testing.T) {
	code, _, stderr := runCaptured(t, "serve", "--weights", t.TempDir(), "--decoder-weights", "fp8")
	if code != 2 || !strings.Contains(stderr, `--decoder-weights "fp8": want bf16 or int8`) {
		t.Fatalf("--decoder-weights fp8: exit %d, stderr %q; want 2 naming bf16 and int8", code, stderr)
	}
	p := startServe(t, stageMicroModel(t), "--decoder-weights", "int8", "--default-language", "en")
	code, body := postJFK(t, p.httpURL, "model", "whisper-1", "response_format", "text")
	if code != http.StatusOK || len(bytes.TrimSpace(body)) == 0 {
		t.Fatalf("transcription with int8 decoder weights: %d %q", code, body)
	}
}
