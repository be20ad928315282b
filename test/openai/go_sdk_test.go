package openai_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/xdna-whisper/xdna-whisper/encoder/server"
	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
	"github.com/xdna-whisper/xdna-whisper/encoder/transcribe"
)

// client is the Go SDK pointed at sv, without retries (a refusal must show).
func (sv *serving) client() openai.Client {
	return openai.NewClient(option.WithBaseURL(sv.base), option.WithAPIKey("unused"), option.WithMaxRetries(0))
}

func open(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestGoSDK drives every route with github.com/openai/openai-go/v3 and
// compares each answer with the Transcriber's in-process result.
func TestGoSDK(t *testing.T) {
	sv := serve(t, server.DefaultOptions())
	c := sv.client()
	ctx := context.Background()
	ref := sv.reference(t, jfkWAV, transcribe.Options{Task: tokenizer.Transcribe})
	t.Logf("reference: %d segments, language %s, text %q", len(ref.Segments), ref.Language, ref.Text)

	t.Run("models", func(t *testing.T) {
		page, err := c.Models.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Data) != 1 || page.Data[0].ID != modelID || page.Data[0].OwnedBy != "xdna-whisper" {
			t.Errorf("models: %+v", page.Data)
		}
		m, err := c.Models.Get(ctx, "whisper-1")
		if err != nil || m.ID != "whisper-1" {
			t.Errorf("model whisper-1: %+v, %v", m, err)
		}
	})

	t.Run("json", func(t *testing.T) {
		res, err := c.Audio.Transcriptions.New(ctx, openai.AudioTranscriptionNewParams{
			File: openai.File(open(t, jfkWAV), "jfk.wav", "audio/wav"), Model: openai.AudioModelWhisper1})
		if err != nil {
			t.Fatal(err)
		}
		if res.Text != tokenizer.ValidUTF8(ref.Text) {
			t.Errorf("text %q, want %q", res.Text, ref.Text)
		}
		if u := res.Usage; u.Type != "duration" || u.Seconds != ref.Duration {
			t.Errorf("usage %+v, want %v s", u, ref.Duration)
		}
	})

	t.Run("verbose_json", func(t *testing.T) {
		res, err := c.Audio.Transcriptions.New(ctx, openai.AudioTranscriptionNewParams{
			File: openai.File(open(t, jfkWAV), "jfk.wav", "audio/wav"), Model: modelID,
			ResponseFormat: openai.AudioResponseFormatVerboseJSON, TimestampGranularities: []string{"segment"}})
		if err != nil {
			t.Fatal(err)
		}
		v := res.AsTranscriptionVerbose()
		name, _ := tokenizer.LanguageName(ref.Language)
		if v.Text != tokenizer.ValidUTF8(ref.Text) || v.Language != name || v.Duration != ref.Duration || len(v.Segments) != len(ref.Segments) {
			t.Fatalf("verbose: text %q language %q duration %v, %d segments; want %q %q %v %d",
				v.Text, v.Language, v.Duration, len(v.Segments), ref.Text, name, ref.Duration, len(ref.Segments))
		}
		for i, s := range v.Segments {
			r := ref.Segments[i]
			if s.ID != int64(r.ID) || s.Start != r.Start || s.End != r.End || s.Text != tokenizer.ValidUTF8(r.Text) || s.Seek != int64(r.Seek) ||
				len(s.Tokens) != len(r.Tokens) || s.Temperature != r.Temperature || s.AvgLogprob != r.AvgLogProb {
				t.Errorf("segment %d: %+v, want %+v", i, s, r)
			}
			for j := range s.Tokens {
				if s.Tokens[j] != int64(r.Tokens[j]) {
					t.Errorf("segment %d token %d: %d, want %d", i, j, s.Tokens[j], r.Tokens[j])
					break
				}
			}
		}
	})

	t.Run("words", func(t *testing.T) {
		want := sv.reference(t, jfkWAV, transcribe.Options{Task: tokenizer.Transcribe, WordTimestamps: true})
		res, err := c.Audio.Transcriptions.New(ctx, openai.AudioTranscriptionNewParams{
			File: openai.File(open(t, jfkWAV), "jfk.wav", "audio/wav"), Model: modelID,
			ResponseFormat: openai.AudioResponseFormatVerboseJSON, TimestampGranularities: []string{"word", "segment"}})
		if err != nil {
			t.Fatal(err)
		}
		v := res.AsTranscriptionVerbose()
		var words []transcribe.Word
		for _, s := range want.Segments {
			words = append(words, s.Words...)
		}
		if len(words) == 0 {
			t.Fatal("the reference has no words: the comparison would be empty")
		}
		if len(v.Words) != len(words) || len(v.Segments) != len(want.Segments) {
			t.Fatalf("%d words, %d segments; want %d, %d", len(v.Words), len(v.Segments), len(words), len(want.Segments))
		}
		for i, w := range v.Words {
			if w.Word != tokenizer.ValidUTF8(words[i].Word) || w.Start != words[i].Start || w.End != words[i].End {
				t.Errorf("word %d: %+v, want %+v", i, w, words[i])
			}
		}
	})

	t.Run("text formats", func(t *testing.T) {
		for _, format := range []openai.AudioResponseFormat{openai.AudioResponseFormatText, openai.AudioResponseFormatSRT, openai.AudioResponseFormatVTT} {
			var out string
			err := c.Post(ctx, "audio/transcriptions", openai.AudioTranscriptionNewParams{
				File: openai.File(open(t, jfkWAV), "jfk.wav", "audio/wav"), Model: openai.AudioModelWhisper1, ResponseFormat: format}, &out)
			if err != nil {
				t.Fatalf("%s: %v", format, err)
			}
			switch format {
			case openai.AudioResponseFormatText:
				if out != tokenizer.ValidUTF8(ref.Text)+"\n" {
					t.Errorf("text: %q, want %q", out, ref.Text+"\n")
				}
			default:
				cues := 0
				for _, s := range ref.Segments {
					if strings.TrimSpace(s.Text) != "" {
						cues++
						if !strings.Contains(out, strings.TrimSpace(s.Text)) {
							t.Errorf("%s: segment %q missing", format, s.Text)
						}
					}
				}
				if n := strings.Count(out, " --> "); n != cues {
					t.Errorf("%s: %d cues, want %d:\n%s", format, n, cues, out)
				}
			}
		}
	})

	t.Run("stream", func(t *testing.T) {
		stream := c.Audio.Transcriptions.NewStreaming(ctx, openai.AudioTranscriptionNewParams{
			File: openai.File(open(t, jfkWAV), "jfk.wav", "audio/wav"), Model: openai.AudioModelWhisper1})
		var deltas []string
		var done string
		for stream.Next() {
			switch ev := stream.Current(); ev.Type {
			case "transcript.text.delta":
				deltas = append(deltas, ev.Delta)
			case "transcript.text.done":
				done = ev.Text
			default:
				t.Errorf("event %q", ev.Type)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if len(deltas) != len(ref.Segments) {
			t.Errorf("%d deltas, want one per segment (%d)", len(deltas), len(ref.Segments))
		}
		for i := range min(len(deltas), len(ref.Segments)) {
			if deltas[i] != tokenizer.ValidUTF8(ref.Segments[i].Text) {
				t.Errorf("delta %d: %q, want %q", i, deltas[i], ref.Segments[i].Text)
			}
		}
		if done != tokenizer.ValidUTF8(ref.Text) {
			t.Errorf("done %q, want %q", done, ref.Text)
		}
	})

	t.Run("translation", func(t *testing.T) {
		res, err := c.Audio.Translations.New(ctx, openai.AudioTranslationNewParams{
			File: openai.File(open(t, jfkFLAC), "jfk.flac", "audio/flac"), Model: openai.AudioModelWhisper1})
		if !sv.tr.Capabilities().Translate {
			var e *openai.Error
			if !errors.As(err, &e) || e.StatusCode != 400 || e.Param != "model" || !strings.Contains(e.Message, "cannot translate") {
				t.Fatalf("translation on an English-only model: %v", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		want := sv.reference(t, jfkFLAC, transcribe.Options{Task: tokenizer.Translate})
		if res.Text != tokenizer.ValidUTF8(want.Text) {
			t.Errorf("translation %q, want %q", res.Text, want.Text)
		}
	})
}

// TestGoSDKErrors: refusals reach the Go SDK as *openai.Error with the
// status, type, param and code OpenAI's API would give.
func TestGoSDKErrors(t *testing.T) {
	opts := server.DefaultOptions()
	opts.MaxAudioSeconds = 5
	sv := serve(t, opts)
	c := sv.client()
	for _, tc := range []struct {
		name       string
		params     openai.AudioTranscriptionNewParams
		status     int
		typ, param string
		code, frag string
	}{
		{"unknown model", openai.AudioTranscriptionNewParams{File: openai.File(strings.NewReader("x"), "a.wav", "audio/wav"), Model: "gpt-4o-transcribe"},
			400, "invalid_request_error", "model", "model_not_found", `"gpt-4o-transcribe" is not served here`},
		{"bad format", openai.AudioTranscriptionNewParams{File: openai.File(open(t, jfkFLAC), "a.flac", "audio/flac"), Model: "whisper-1", ResponseFormat: "mp3"},
			400, "invalid_request_error", "response_format", "", `response_format "mp3"`},
		{"not audio", openai.AudioTranscriptionNewParams{File: openai.File(strings.NewReader("just some text, no audio"), "notes.txt", "text/plain"), Model: "whisper-1"},
			400, "invalid_request_error", "file", "", "this server reads WAV and FLAC"},
		{"too long", openai.AudioTranscriptionNewParams{File: openai.File(open(t, jfkWAV), "jfk.wav", "audio/wav"), Model: "whisper-1"},
			413, "invalid_request_error", "file", "", "over the limit of 5 s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Audio.Transcriptions.New(context.Background(), tc.params)
			var e *openai.Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want an *openai.Error", err)
			}
			if e.StatusCode != tc.status || e.Type != tc.typ || e.Param != tc.param || e.Code != tc.code || !strings.Contains(e.Message, tc.frag) {
				t.Errorf("status %d type %q param %q code %q message %q; want %d %q %q %q containing %q",
					e.StatusCode, e.Type, e.Param, e.Code, e.Message, tc.status, tc.typ, tc.param, tc.code, tc.frag)
			}
		})
	}
}
