package openai_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	encoderv1 "github.com/xdna-whisper/xdna-whisper/api/encoder/v1"
	"github.com/xdna-whisper/xdna-whisper/encoder/server"
	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
	"github.com/xdna-whisper/xdna-whisper/encoder/transcribe"
)

// TestGoSDKOptionErrors: options the server or the real Transcriber
// refuses reach the Go SDK as a 400 invalid_request_error naming the
// parameter (never a 500), and gRPC as INVALID_ARGUMENT; a beam size in
// range (beam_size, an extension field the SDK sends as an extra, which
// must be a string to reach the multipart body) is
// served and equals the in-process beam search.
func TestGoSDKOptionErrors(t *testing.T) {
	sv := serve(t, server.DefaultOptions())
	c := sv.client()
	params := func(edit func(*openai.AudioTranscriptionNewParams)) openai.AudioTranscriptionNewParams {
		p := openai.AudioTranscriptionNewParams{File: openai.File(open(t, jfkWAV), "jfk.wav", "audio/wav"), Model: modelID}
		edit(&p)
		return p
	}
	extra := func(v string) func(*openai.AudioTranscriptionNewParams) {
		return func(p *openai.AudioTranscriptionNewParams) { p.SetExtraFields(map[string]any{"beam_size": v}) }
	}
	for _, tc := range []struct {
		name        string
		edit        func(*openai.AudioTranscriptionNewParams)
		param, frag string
	}{
		{"unknown language", func(p *openai.AudioTranscriptionNewParams) { p.Language = openai.String("klingon") }, "language", `unsupported language "klingon"`},
		{"temperature over 1", func(p *openai.AudioTranscriptionNewParams) { p.Temperature = openai.Float(2.5) }, "temperature", "want a number from 0 to 1"},
		{"negative temperature", func(p *openai.AudioTranscriptionNewParams) { p.Temperature = openai.Float(-0.1) }, "temperature", "want a number from 0 to 1"},
		{"unknown granularity", func(p *openai.AudioTranscriptionNewParams) {
			p.ResponseFormat = openai.AudioResponseFormatVerboseJSON
			p.TimestampGranularities = []string{"char"}
		}, "timestamp_granularities", "want segment or word"},
		{"granularity without verbose_json", func(p *openai.AudioTranscriptionNewParams) { p.TimestampGranularities = []string{"word"} }, "timestamp_granularities", "needs response_format verbose_json"},
		{"beam size over the decoder batch", extra("33"), "beam_size", "transcribe: option beam_size: expected 0 to 32 (the decoder batch; 0 and 1 are greedy), found 33"},
		{"negative beam size", extra("-1"), "beam_size", "found -1"},
		{"beam size not a number", extra("wide"), "beam_size", "want a whole number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Audio.Transcriptions.New(context.Background(), params(tc.edit))
			var e *openai.Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want an *openai.Error", err)
			}
			if e.StatusCode != 400 || e.Type != "invalid_request_error" || e.Param != tc.param || !strings.Contains(e.Message, tc.frag) {
				t.Errorf("status %d type %q param %q message %q; want 400 invalid_request_error %q containing %q",
					e.StatusCode, e.Type, e.Param, e.Message, tc.param, tc.frag)
			}
		})
	}
	want := sv.reference(t, jfkWAV, transcribe.Options{Task: tokenizer.Transcribe, BeamSize: 3})
	res, err := c.Audio.Transcriptions.New(context.Background(), params(extra("3")))
	if err != nil || res.Text != tokenizer.ValidUTF8(want.Text) {
		t.Errorf("beam_size 3: %q, %v; want %q", res.Text, err, want.Text)
	}
	conn, err := grpc.NewClient(sv.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wav, err := os.ReadFile(jfkWAV)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := encoderv1.NewEncoderClient(conn).Transcribe(context.Background(), &encoderv1.TranscribeRequest{
		Audio: &encoderv1.Audio{Format: encoderv1.AudioFormat_AUDIO_FORMAT_WAV, Data: wav}, BeamSize: 40})
	if err == nil {
		_, err = stream.Recv()
	}
	if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "option beam_size") {
		t.Errorf("gRPC beam size 40: %v, want INVALID_ARGUMENT about beam_size", err)
	}
}

// TestDecodeMemoryQueues: with decode memory for one window, concurrent
// requests wait their turn for the decoder instead of being refused — each
// gets the answer it gets alone — and the decode queue depth the operator's
// autoscaler reads is back at 0 afterwards.
func TestDecodeMemoryQueues(t *testing.T) {
	sv := serveWith(t, server.DefaultOptions(), 1) // any window is larger: one at a time
	c := sv.client()
	want := tokenizer.ValidUTF8(sv.reference(t, jfkWAV, transcribe.Options{Task: tokenizer.Transcribe}).Text)
	const n = 6
	got := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res, err := c.Audio.Transcriptions.New(context.Background(), openai.AudioTranscriptionNewParams{
				File: openai.File(open(t, jfkWAV), "jfk.wav", "audio/wav"), Model: modelID})
			if err == nil {
				got[i] = res.Text
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || got[i] != want {
			t.Errorf("request %d: %q, %v; want %q", i, got[i], errs[i], want)
		}
	}
	if _, _, _, _, peak := sv.tr.DecodeMemory(); peak != 1 {
		t.Errorf("%d windows decoded at once, want 1", peak)
	}
	if v := sv.metric(t, server.DecodeQueueDepthMetric); v != 0 {
		t.Errorf("%s = %v after every request ended", server.DecodeQueueDepthMetric, v)
	}
}
