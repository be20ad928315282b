package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	contract "github.com/xdna-whisper/xdna-whisper/api/report"
	"github.com/xdna-whisper/xdna-whisper/encoder/convert"
	"github.com/xdna-whisper/xdna-whisper/encoder/convert/converttest"
)

const stageModels = "../../testdata/models/"

// runQuiet runs the CLI with stdout and stderr sent to files; it returns the
// exit status and stdout.
func runQuiet(t *testing.T, args ...string) (int, string) {
	t.Helper()
	code, out, _ := runCaptured(t, args...)
	return code, out
}

func TestStageCommand(t *testing.T) {
	cache := t.TempDir()
	rf := filepath.Join(t.TempDir(), "termination-log")
	code, out := runQuiet(t, "stage", "--source", stageModels+"tiny-int8.onnx", "--cache", cache, "--result-file", rf)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var s contract.StageResult
	b, _ := os.ReadFile(rf)
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	dir := strings.TrimSpace(out)
	if s.Dir != dir || filepath.Base(dir) != s.Key || len(s.SourceSHA256) != 64 || s.SourcePrecision != "int8" || s.SizeBytes <= 0 || s.StagedAt.IsZero() || s.Error != "" {
		t.Errorf("stdout %q, result %+v", out, s)
	}
	if s.Capabilities == nil || !slices.Equal(s.Capabilities.Tasks(), []string{"encode"}) {
		t.Errorf("capabilities %+v, want encode only for an encoder .onnx", s.Capabilities)
	}
	if code, _ := runQuiet(t, "inspect", dir); code != 0 {
		t.Errorf("inspect of the staged dir: exit %d", code)
	}
	if code, out := runQuiet(t, "inspect", "--json", stageModels+"tiny-op17.onnx"); code != 0 || !strings.Contains(out, `"encoder_ffn_dim": 128`) {
		t.Errorf("inspect --json: exit %d, %s", code, out)
	}
}

func TestStageCommandFailures(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string // in the result file
	}{
		{"decoder", []string{"--source", stageModels + "not-encoder-decoder.onnx"}, 1, "not a Whisper encoder"},
		{"missing file", []string{"--source", stageModels + "nope.onnx"}, 1, "no such file"},
		{"no source", []string{}, 2, ""},
		{"bad heads", []string{"--source", stageModels + "tiny-op14.onnx", "--heads", "-2"}, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cache := t.TempDir()
			rf := filepath.Join(t.TempDir(), "result")
			code, _ := runQuiet(t, append([]string{"stage", "--cache", cache, "--result-file", rf}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d", code, tt.code)
			}
			if tt.want == "" {
				return
			}
			b, err := os.ReadFile(rf)
			var s contract.StageResult
			if err != nil || json.Unmarshal(b, &s) != nil || !strings.Contains(s.Error, tt.want) || s.Reason != contract.CodeStagingFailed || s.Key != "" || len(b) >= 4096 {
				t.Errorf("result file %q (%v), want an error containing %q", b, err, tt.want)
			}
			if es, _ := os.ReadDir(cache); len(es) != 0 {
				t.Errorf("cache holds %d entries after a failure", len(es))
			}
		})
	}
}

func TestResultFileStaysSmall(t *testing.T) {
	rf := filepath.Join(t.TempDir(), "r")
	long := strings.Repeat("x", 10000)
	if err := writeResult(rf, contract.FailedStage(errString(long))); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(rf); len(b) >= 4096 || !json.Valid(b) {
		t.Errorf("result file of %d bytes", len(b))
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// The demo's staging step: the embedded model stages and reports full 30 s windows.
func TestStageDemo(t *testing.T) {
	r, err := stageDemo(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := convert.Inspect(r.Dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	printReport(&b, rep)
	if !strings.Contains(b.String(), "1500 positions (3000 frames)") || !strings.Contains(b.String(), "layers.1.fc2.weight") {
		t.Errorf("report:\n%s", b.String())
	}
}

// A whole model (the micro fixture with a byte-level tokenizer) staged from
// its directory: the result file reports transcription, and inspect shows
// what the staged entry can do.
func TestStageCommandWholeModel(t *testing.T) {
	dir := t.TempDir()
	weights, err := converttest.Micro(stageModels+"hf-micro", dir)
	if err != nil {
		t.Fatal(err)
	}
	rf := filepath.Join(t.TempDir(), "termination-log")
	code, out := runQuiet(t, "stage", "--source", filepath.Join(dir, "src"), "--cache", filepath.Join(dir, "cache"), "--result-file", rf)
	if code != 0 || strings.TrimSpace(out) != weights {
		t.Fatalf("exit %d, stdout %q; want %s", code, out, weights)
	}
	var s contract.StageResult
	b, _ := os.ReadFile(rf)
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if !s.Existing || s.Capabilities == nil || strings.Join(s.Capabilities.Tasks(), ",") != "encode,transcribe" {
		t.Errorf("result %+v, want the existing entry that encodes and transcribes", s)
	}
	code, out = runQuiet(t, "inspect", weights)
	for _, want := range []string{"can:              encode, transcribe", "languages:        1 (en)", "decoder:          2 layers, 4 heads, ffn 256, vocabulary 1864", "decoder.embed_tokens.weight"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("inspect: exit %d, output lacks %q:\n%s", code, want, out)
		}
	}
}
