package main

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"os"
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
	wav, err := os.ReadFile("../../testdata/mel/jfk_16k.wav")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("model", "whisper-1")
	mw.WriteField("response_format", "text")
	fw, _ := mw.CreateFormFile("file", "jfk.wav")
	fw.Write(wav)
	mw.Close()
	resp, err := http.Post(p.httpURL+"/v1/audio/transcriptions", mw.FormDataContentType(), &b)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || len(bytes.TrimSpace(body)) == 0 {
		t.Fatalf("transcription with int8 decoder weights: %d %q", resp.StatusCode, body)
	}
}
