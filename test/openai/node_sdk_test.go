package openai_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdna-whisper/xdna-whisper/encoder/server"
	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
	"github.com/xdna-whisper/xdna-whisper/encoder/transcribe"
)

// nodeOut is what sdk.mjs prints.
type nodeOut struct {
	Models  []string
	JSON    struct{ Text string }
	Verbose struct {
		Text, Language string
		Duration       float64
		Segments       []struct {
			ID         int
			Start, End float64
			Text       string
			Tokens     []int
		}
	}
	Words struct {
		Segments []any
		Words    []transcribe.Word
	}
	Text, SRT, VTT string
	Stream         []struct{ Type, Delta, Text string }
	FromBuffer     struct{ Text string } `json:"fromBuffer"`
	Translation    struct {
		OK    *struct{ Text string }
		Error *nodeError
	}
	Errors struct {
		RawModel    nodeError `json:"model"`
		RawFormat   nodeError `json:"format"`
		RawNotAudio nodeError `json:"notAudio"`
	}
}

type nodeError struct {
	Status                     int
	Type, Param, Code, Message *string
}

func str(p *string) string {
	if p == nil {
		return "<null>"
	}
	return *p
}

// TestNodeSDK runs sdk.mjs (the npm `openai` package) against the server
// and checks its results against the Transcriber's in-process results.
func TestNodeSDK(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the npm SDK test needs Node.js (make test-openai installs the SDK with npm ci)")
	}
	if _, err := os.Stat(filepath.Join("node_modules", "openai", "package.json")); err != nil {
		t.Skip("node_modules/openai is missing: run `npm ci` in test/openai (make test-openai does)")
	}
	sv := serve(t, server.DefaultOptions())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "sdk.mjs", sv.base, jfkWAV, jfkFLAC)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("node sdk.mjs: %v\n%s", err, stderr.String())
	}
	var got nodeOut
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("sdk.mjs output: %v\n%s", err, raw)
	}
	ref := sv.reference(t, jfkWAV, transcribe.Options{Task: tokenizer.Transcribe})
	text := tokenizer.ValidUTF8(ref.Text)

	if len(got.Models) != 1 || got.Models[0] != modelID {
		t.Errorf("models.list: %v, want [%s]", got.Models, modelID)
	}
	if got.JSON.Text != text {
		t.Errorf("json: %q, want %q", got.JSON.Text, text)
	}
	name, _ := tokenizer.LanguageName(ref.Language)
	v := got.Verbose
	if v.Text != text || v.Language != name || v.Duration != ref.Duration || len(v.Segments) != len(ref.Segments) {
		t.Errorf("verbose_json: %q %q %v with %d segments; want %q %q %v with %d",
			v.Text, v.Language, v.Duration, len(v.Segments), text, name, ref.Duration, len(ref.Segments))
	} else {
		for i, s := range v.Segments {
			r := ref.Segments[i]
			if s.ID != r.ID || s.Start != r.Start || s.End != r.End || s.Text != tokenizer.ValidUTF8(r.Text) || !equalInts(s.Tokens, r.Tokens) {
				t.Errorf("verbose_json segment %d: %+v, want %+v", i, s, r)
			}
		}
	}
	withWords := sv.reference(t, jfkWAV, transcribe.Options{Task: tokenizer.Transcribe, WordTimestamps: true})
	var words []transcribe.Word
	for _, s := range withWords.Segments {
		for _, w := range s.Words {
			w.Word = tokenizer.ValidUTF8(w.Word)
			words = append(words, w)
		}
	}
	if len(words) == 0 || len(got.Words.Words) != len(words) || got.Words.Segments != nil {
		t.Errorf("timestamp_granularities [word]: %d words and %d segments, want %d words only", len(got.Words.Words), len(got.Words.Segments), len(words))
	} else {
		for i, w := range got.Words.Words {
			if w != words[i] {
				t.Errorf("word %d: %+v, want %+v", i, w, words[i])
			}
		}
	}
	// The SDK hands text formats over as strings (decoded as UTF-8).
	if got.Text != tokenizer.ValidUTF8(ref.Text+"\n") {
		t.Errorf("text: %q, want %q", got.Text, ref.Text+"\n")
	}
	if !strings.HasPrefix(got.VTT, "WEBVTT\n\n") || !strings.HasPrefix(got.SRT, "1\n00:00:") {
		t.Errorf("srt %q, vtt %q", got.SRT, got.VTT)
	}
	var deltas string
	for i, ev := range got.Stream {
		switch {
		case i < len(got.Stream)-1 && ev.Type == "transcript.text.delta":
			deltas += ev.Delta
		case i == len(got.Stream)-1 && ev.Type == "transcript.text.done":
			if ev.Text != text {
				t.Errorf("stream done: %q, want %q", ev.Text, text)
			}
		default:
			t.Errorf("stream event %d of %d: %+v", i, len(got.Stream), ev)
		}
	}
	var want string
	for _, s := range ref.Segments {
		want += tokenizer.ValidUTF8(s.Text)
	}
	if len(got.Stream) != len(ref.Segments)+1 || deltas != want {
		t.Errorf("stream: %d events, deltas %q; want %d deltas %q and done", len(got.Stream), deltas, len(ref.Segments), want)
	}
	short := sv.reference(t, jfkFLAC, transcribe.Options{Task: tokenizer.Transcribe})
	if got.FromBuffer.Text != tokenizer.ValidUTF8(short.Text) {
		t.Errorf("toFile upload: %q, want %q", got.FromBuffer.Text, short.Text)
	}
	if sv.tr.Capabilities().Translate {
		tr := sv.reference(t, jfkFLAC, transcribe.Options{Task: tokenizer.Translate})
		if got.Translation.OK == nil || got.Translation.OK.Text != tokenizer.ValidUTF8(tr.Text) {
			t.Errorf("translation: %+v, want %q", got.Translation, tr.Text)
		}
	} else if e := got.Translation.Error; e == nil || e.Status != 400 || str(e.Param) != "model" {
		t.Errorf("translation on an English-only model: %+v", got.Translation)
	}
	for _, tc := range []struct {
		name  string
		e     nodeError
		param string
		frag  string
	}{
		{"unknown model", got.Errors.RawModel, "model", `"whisper-large-v9" is not served here`},
		{"bad format", got.Errors.RawFormat, "response_format", `response_format "mp3"`},
		{"not audio", got.Errors.RawNotAudio, "file", "this server reads WAV and FLAC"},
	} {
		if tc.e.Status != 400 || str(tc.e.Type) != "invalid_request_error" || str(tc.e.Param) != tc.param || !strings.Contains(str(tc.e.Message), tc.frag) {
			t.Errorf("%s: status %d type %s param %s message %s", tc.name, tc.e.Status, str(tc.e.Type), str(tc.e.Param), str(tc.e.Message))
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
