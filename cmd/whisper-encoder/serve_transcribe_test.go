package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/convert/converttest"
	"github.com/xdna-whisper/xdna-whisper/encoder/server"
)

// TestServeTranscribeLimits runs serve on a staged whole model (hf-micro)
// with the --default-* wrapper around the Transcriber: /metrics still
// exports the decode queue depth under the operator's metric name, and a
// beam size over the decoder batch is a 400 about beam_size, not a 500.
func TestServeTranscribeLimits(t *testing.T) {
	weights := stageMicroModel(t)
	p := startServe(t, weights, "--decode-memory", "50000000", "--default-language", "en")
	post := func(fields ...string) (int, []byte) { return postJFK(t, p.httpURL, fields...) }
	if code, body := post("model", "whisper-1", "response_format", "text"); code != http.StatusOK || len(bytes.TrimSpace(body)) == 0 {
		t.Fatalf("transcription: %d %q", code, body)
	}
	code, body := post("model", "whisper-1", "beam_size", "99")
	var e struct {
		Error struct {
			Message string  `json:"message"`
			Param   *string `json:"param"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || code != http.StatusBadRequest || e.Error.Param == nil || *e.Error.Param != "beam_size" ||
		!strings.Contains(e.Error.Message, "expected 0 to 32") {
		t.Errorf("beam_size 99: %d %s", code, body)
	}
	resp, err := http.Get(p.httpURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	found := false
	for sc := bufio.NewScanner(resp.Body); sc.Scan(); {
		if v, ok := strings.CutPrefix(sc.Text(), server.DecodeQueueDepthMetric+" "); ok {
			found = true
			if v != "0" {
				t.Errorf("%s = %s with no request in progress", server.DecodeQueueDepthMetric, v)
			}
		}
	}
	if !found {
		t.Errorf("/metrics lacks %s", server.DecodeQueueDepthMetric)
	}
}

// TestDecodeMemoryWithin: under a memory limit the decode memory is at most a
// third of the heap's room; without one, or with room to spare, the default.
func TestDecodeMemoryWithin(t *testing.T) {
	const def = 64 << 20
	packed := int64(146 << 20) // whisper-base: packed encoder and decoder weights
	room := func(limit int64) int64 { return limit - packed - server.NonHeapAllowance }
	for _, c := range []struct {
		name        string
		limit, want int64
	}{
		{"no limit", 0, def},
		{"1 GiB pod", 1 << 30, def},
		{"300 MB pod", 300e6, room(300e6) / 3},
		{"limit below the weights", 100 << 20, 1},
	} {
		if got := decodeMemoryWithin(def, c.limit, packed); got != c.want {
			t.Errorf("%s: decodeMemoryWithin(%d, %d, %d) = %d, want %d", c.name, def, c.limit, packed, got, c.want)
		}
	}
	if got := room(300e6) / 3; got >= 2*29_500_000 || got < 29_500_000 {
		t.Errorf("300 MB pod: %d bytes of decode memory, want room for exactly one whisper-base greedy window (~29.5 MB)", got)
	}
}

// stageMicroModel stages the whole hf-micro model with the stage command
// and returns the staged directory.
func stageMicroModel(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	weights, err := converttest.Micro(stageModels+"hf-micro", dir)
	if err != nil {
		t.Fatal(err)
	}
	if code, out := runQuiet(t, "stage", "--source", filepath.Join(dir, "src"), "--cache", filepath.Join(dir, "cache")); code != 0 || strings.TrimSpace(out) != weights {
		t.Fatalf("stage: exit %d, %q", code, out)
	}
	return weights
}

// postJFK posts jfk_16k.wav to url's /v1/audio/transcriptions as a
// multipart form with the given field name/value pairs and returns the
// status code and body.
func postJFK(t *testing.T, url string, fields ...string) (int, []byte) {
	t.Helper()
	wav, err := os.ReadFile("../../testdata/mel/jfk_16k.wav")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for i := 0; i < len(fields); i += 2 {
		mw.WriteField(fields[i], fields[i+1])
	}
	fw, _ := mw.CreateFormFile("file", "jfk.wav")
	fw.Write(wav)
	mw.Close()
	resp, err := http.Post(url+"/v1/audio/transcriptions", mw.FormDataContentType(), &b)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}
