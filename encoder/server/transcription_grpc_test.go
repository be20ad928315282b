package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	encoderv1 "github.com/xdna-whisper/xdna-whisper/api/encoder/v1"
)

// recvAll reads a Transcribe stream to its end.
func recvAll(stream grpc.ServerStreamingClient[encoderv1.TranscribeResponse]) ([]*encoderv1.TranscribeResponse, error) {
	var out []*encoderv1.TranscribeResponse
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
}

// TestTranscribeRPC: Transcribe streams one message per segment, then the
// whole transcription; options reach the Transcriber.
func TestTranscribeRPC(t *testing.T) {
	fake := newFakeTranscriber()
	h := startTranscriber(t, fake, DefaultOptions())
	stream, err := h.grpc.Transcribe(context.Background(), &encoderv1.TranscribeRequest{
		Audio:    &encoderv1.Audio{Format: encoderv1.AudioFormat_AUDIO_FORMAT_WAV, Data: sineWAV(12, 8000, 0.5)},
		Language: "fr", WordTimestamps: true, Task: encoderv1.Task_TASK_TRANSLATE, RequestId: "abc-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := recvAll(stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 4 {
		t.Fatalf("%d messages, want 3 segments and done", len(msgs))
	}
	var text string
	for i, m := range msgs[:3] {
		s := m.GetSegment()
		if s == nil || s.Id != int32(i) || s.Start != float64(5*i) || len(s.Words) != 2 || len(s.Tokens) != 2 || m.RequestId != "abc-1" {
			t.Fatalf("message %d: %v", i, m)
		}
		text += s.Text
	}
	d := msgs[3].GetDone()
	want := " [translated] Segment 0 (fr) rms 0.35. [translated] Segment 1 (fr) rms 0.35. [translated] Segment 2 (fr) rms 0.35."
	if d == nil || d.Text != want || text != want || d.Language != "fr" || d.DurationSeconds != 12 || d.Segments != 3 {
		t.Errorf("done %v, segments' text %q", d, text)
	}
	if o := fake.lastOptions(); o.Task != "translate" || !o.WordTimestamps || o.Language != "fr" {
		t.Errorf("options %+v", o)
	}
	m, err := h.grpc.GetModel(context.Background(), &encoderv1.GetModelRequest{})
	if err != nil || !m.Transcribe || !m.Translate || m.ModelId != "whisper-fake" || len(m.Languages) != 3 {
		t.Errorf("GetModel: %v, %v", m, err)
	}
}

// TestTranscribeRPCErrors: bad requests and tasks the model cannot do are
// refused with the right codes.
func TestTranscribeRPCErrors(t *testing.T) {
	wav := sineWAV(1, 16000, 0.5)
	for _, tc := range []struct {
		name string
		nil  bool // no Transcriber
		req  *encoderv1.TranscribeRequest
		code codes.Code
		frag string
	}{
		{"no audio", false, &encoderv1.TranscribeRequest{}, codes.InvalidArgument, "request carries no audio"},
		{"not audio", false, &encoderv1.TranscribeRequest{Audio: &encoderv1.Audio{Data: []byte("hello, world, not audio")}}, codes.InvalidArgument, "WAV and FLAC"},
		{"bad language", false, &encoderv1.TranscribeRequest{Audio: &encoderv1.Audio{Data: wav}, Language: "xx"}, codes.InvalidArgument, `unsupported language "xx"`},
		{"bad temperature", false, &encoderv1.TranscribeRequest{Audio: &encoderv1.Audio{Data: wav}, Temperature: 2}, codes.InvalidArgument, "temperature 2: want 0 to 1"},
		{"bad task", false, &encoderv1.TranscribeRequest{Audio: &encoderv1.Audio{Data: wav}, Task: 7}, codes.InvalidArgument, "task 7"},
		{"encode only", true, &encoderv1.TranscribeRequest{Audio: &encoderv1.Audio{Data: wav}}, codes.FailedPrecondition, "cannot transcribe: it can encode (it has no decoder"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFakeTranscriber()
			var h *harness
			if tc.nil {
				h = startTranscriber(t, nil, DefaultOptions())
			} else {
				h = startTranscriber(t, fake, DefaultOptions())
			}
			stream, err := h.grpc.Transcribe(context.Background(), tc.req)
			if err == nil {
				_, err = recvAll(stream)
			}
			if st := status.Convert(err); st.Code() != tc.code || !strings.Contains(st.Message(), tc.frag) {
				t.Errorf("got %v %q, want %v containing %q", st.Code(), st.Message(), tc.code, tc.frag)
			}
		})
	}
}

// TestDrainCutsTranscriptions: transcriptions still running at the drain
// timeout are cut: an SSE stream ends with an error event (503,
// service_unavailable), a Transcribe stream with UNAVAILABLE, the
// Transcriber's contexts end and Run reports the cut.
func TestDrainCutsTranscriptions(t *testing.T) {
	fake := newFakeTranscriber()
	fake.gate = make(chan struct{}) // never opened: both hold after their first segment
	opts := DefaultOptions()
	opts.ShutdownDelay = 0
	opts.Transcriber = fake
	s, err := New(newGated(fakeInfo(), false), fakeInfo(), opts)
	if err != nil {
		t.Fatal(err)
	}
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	gl, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, s, hl, gl, 300*time.Millisecond) }()
	h := &harness{s: s, base: "http://" + hl.Addr().String()}
	h.waitReady(t)
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	resp := h.streamRequest(t, context.Background(), "/v1/audio/transcriptions", sineWAV(12, 16000, 0.5))
	events := readEvents(t, resp.Body)
	if ev, _ := next(t, events); ev.data["type"] != "transcript.text.delta" {
		t.Fatalf("first event %+v", ev)
	}
	stream, err := encoderv1.NewEncoderClient(conn).Transcribe(context.Background(), &encoderv1.TranscribeRequest{
		Audio: &encoderv1.Audio{Data: sineWAV(12, 16000, 0.5)}})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := stream.Recv(); err != nil || m.GetSegment() == nil {
		t.Fatalf("first message %v, %v", m, err)
	}
	stop()
	ev, _ := next(t, events)
	e, _ := ev.data["error"].(map[string]any)
	if ev.event != "error" || e == nil || e["code"] != "service_unavailable" || !strings.Contains(e["message"].(string), "cut at the drain timeout") {
		t.Errorf("SSE at the drain timeout: %+v", ev)
	}
	if _, err := recvAll(stream); status.Code(err) != codes.Unavailable {
		t.Errorf("Transcribe at the drain timeout: %v, want UNAVAILABLE", err)
	}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "transcriptions among them were cut") {
		t.Errorf("Run: %v, want a report of the cut", err)
	}
	if n := fake.running.Load(); n != 0 {
		t.Errorf("%d transcriptions still running", n)
	}
	if resp, err := http.Get(h.base + "/readyz"); err == nil {
		resp.Body.Close()
		t.Errorf("server still answers after Run returned")
	}
}
