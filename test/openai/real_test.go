package openai_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	encoderv1 "github.com/xdna-whisper/xdna-whisper/api/encoder/v1"
	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/server"
	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
	"github.com/xdna-whisper/xdna-whisper/encoder/transcribe"
)

// metric reads one sample of the server's /metrics (series is the metric
// name with its labels as Prometheus prints them).
func (sv *serving) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get(strings.TrimSuffix(sv.base, "/v1") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0 // a counter not yet incremented is not printed
}

// noiseWAV writes seconds of seeded noise (16 kHz mono) into a file.
func noiseWAV(t *testing.T, seconds int) string {
	c := audio.Clip{Rate: 16000, Channels: 1, Samples: make([]float32, seconds*16000)}
	s := uint32(7)
	for i := range c.Samples {
		s = s*1664525 + 1013904223
		c.Samples[i] = 0.3 * (float32(s>>8)/float32(1<<24)*2 - 1) * float32(math.Sin(float64(i)/800))
	}
	path := filepath.Join(t.TempDir(), "noise.wav")
	if err := os.WriteFile(path, audio.EncodeWAV16(c), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConcurrentRequests: requests decoded together (the Transcriber steps
// their sequences in shared batches, their windows share encoder batches)
// each get exactly the answer they get alone.
func TestConcurrentRequests(t *testing.T) {
	sv := serve(t, server.DefaultOptions())
	c := sv.client()
	files := []string{jfkWAV, jfkFLAC, noiseWAV(t, 40), jfkWAV}
	want := make([]string, len(files))
	for i, f := range files {
		want[i] = tokenizer.ValidUTF8(sv.reference(t, f, transcribe.Options{Task: tokenizer.Transcribe}).Text)
	}
	steps0 := sv.metric(t, "whisper_encoder_decoder_steps_total")
	rows0 := sv.metric(t, "whisper_encoder_decoder_rows_total")
	var wg sync.WaitGroup
	got := make([]string, len(files))
	errs := make([]error, len(files))
	for i, f := range files {
		wg.Go(func() {
			res, err := c.Audio.Transcriptions.New(context.Background(), openai.AudioTranscriptionNewParams{
				File: openai.File(open(t, f), filepath.Base(f), "application/octet-stream"), Model: modelID})
			if err == nil {
				got[i] = res.Text
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i := range files {
		if errs[i] != nil || got[i] != want[i] {
			t.Errorf("request %d (%s): %q, %v; want %q", i, files[i], got[i], errs[i], want[i])
		}
	}
	steps := sv.metric(t, "whisper_encoder_decoder_steps_total") - steps0
	rows := sv.metric(t, "whisper_encoder_decoder_rows_total") - rows0
	t.Logf("%d concurrent requests: %.0f decoder steps, %.0f rows (mean batch %.2f)", len(files), steps, rows, rows/steps)
	if steps <= 0 || rows < steps {
		t.Errorf("decoder metrics: %v steps, %v rows", steps, rows)
	}
}

// TestStreamDisconnect: a client that leaves mid-stream (the Go SDK's
// context cancelled after the first delta) ends its transcription: the
// server counts it cancelled, frees its slot, and serves the next request.
func TestStreamDisconnect(t *testing.T) {
	opts := server.DefaultOptions()
	opts.MaxTranscriptions = 1
	sv := serve(t, opts)
	long := noiseWAV(t, 240) // 8 windows
	ctx, cancel := context.WithCancel(context.Background())
	c := sv.client()
	stream := c.Audio.Transcriptions.NewStreaming(ctx, openai.AudioTranscriptionNewParams{
		File: openai.File(open(t, long), "noise.wav", "audio/wav"), Model: modelID})
	if !stream.Next() {
		t.Fatalf("no first event: %v", stream.Err())
	}
	if ev := stream.Current(); ev.Type != "transcript.text.delta" {
		t.Fatalf("first event %+v", ev)
	}
	cancel()
	for stream.Next() {
	}
	stream.Close()
	deadline := time.Now().Add(30 * time.Second)
	for sv.metric(t, "whisper_encoder_transcriptions_in_progress") != 0 ||
		sv.metric(t, `whisper_encoder_requests_total{code="Canceled",method="http_transcriptions"}`) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("after the disconnect: %v in progress, %v cancelled (want 0, 1)",
				sv.metric(t, "whisper_encoder_transcriptions_in_progress"),
				sv.metric(t, `whisper_encoder_requests_total{code="Canceled",method="http_transcriptions"}`))
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := sv.reference(t, jfkFLAC, transcribe.Options{Task: tokenizer.Transcribe})
	res, err := c.Audio.Transcriptions.New(context.Background(), openai.AudioTranscriptionNewParams{
		File: openai.File(open(t, jfkFLAC), "jfk.flac", "audio/flac"), Model: modelID})
	if err != nil || res.Text != tokenizer.ValidUTF8(want.Text) {
		t.Fatalf("the next request: %v, %v", res, err)
	}
}

// TestGRPCTranscribe: the Transcribe RPC streams the segments the
// Transcriber decides in process, then the whole text.
func TestGRPCTranscribe(t *testing.T) {
	sv := serve(t, server.DefaultOptions())
	conn, err := grpc.NewClient(sv.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	data, err := os.ReadFile(jfkWAV)
	if err != nil {
		t.Fatal(err)
	}
	ref := sv.reference(t, jfkWAV, transcribe.Options{Task: tokenizer.Transcribe})
	stream, err := encoderv1.NewEncoderClient(conn).Transcribe(context.Background(), &encoderv1.TranscribeRequest{
		Audio: &encoderv1.Audio{Format: encoderv1.AudioFormat_AUDIO_FORMAT_WAV, Data: data}})
	if err != nil {
		t.Fatal(err)
	}
	var segs []*encoderv1.Segment
	var done *encoderv1.TranscriptionDone
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if s := m.GetSegment(); s != nil {
			segs = append(segs, s)
		} else {
			done = m.GetDone()
		}
	}
	if done == nil || done.Text != tokenizer.ValidUTF8(ref.Text) || done.Language != ref.Language || int(done.Segments) != len(ref.Segments) {
		t.Errorf("done %v, want text %q language %s, %d segments", done, ref.Text, ref.Language, len(ref.Segments))
	}
	if len(segs) != len(ref.Segments) {
		t.Fatalf("%d segments, want %d", len(segs), len(ref.Segments))
	}
	for i, s := range segs {
		r := ref.Segments[i]
		if s.Start != r.Start || s.End != r.End || s.Text != tokenizer.ValidUTF8(r.Text) || fmt.Sprint(s.Tokens) != fmt.Sprint(r.Tokens) {
			t.Errorf("segment %d: %v, want %+v", i, s, r)
		}
	}
}
