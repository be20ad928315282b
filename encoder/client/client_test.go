package client

import (
	"context"
	"errors"
	"net/http"
	"os"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	encoderv1 "github.com/xdna-whisper/xdna-whisper/api/encoder/v1"
	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/convert/converttest"
	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
	"github.com/xdna-whisper/xdna-whisper/encoder/server/servertest"
)

func TestClients(t *testing.T) {
	weights, err := converttest.Demo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	base, addr := servertest.Start(t, weights)
	wav, err := os.ReadFile("../../encoder/bundled/speech_22k.wav")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	g, err := Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()

	req := AudioRequest(wav, encoderv1.AudioFormat_AUDIO_FORMAT_WAV, 0)
	req.RequestId = "c-1"
	w, err := g.Encode(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Hidden.Shape) != 3 || w.Hidden.Shape[1] != 1500 || w.Hidden.Shape[2] != 64 || w.RequestID != "c-1" || w.Batch != 1 || w.Compute <= 0 {
		t.Errorf("Encode: %v id %q batch %d compute %v", w.Hidden.Shape, w.RequestID, w.Batch, w.Compute)
	}
	req.OutputDtype = encoderv1.DType_D_TYPE_BFLOAT16
	wb, err := g.Encode(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range w.Hidden.Data {
		if d := v - wb.Hidden.Data[i]; d > 0.01*abs(v)+1e-6 || -d > 0.01*abs(v)+1e-6 {
			t.Fatalf("bf16 value %d = %g, float32 %g", i, wb.Hidden.Data[i], v)
		}
	}

	// 40 s of PCM16 at 16 kHz by EncodeStream: two windows, in order.
	speech, err := audio.Load(wav, audio.FormatWAV, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var long []float32
	for len(long) < 40*audio.SampleRate {
		long = append(long, speech...)
	}
	pcm := audio.EncodeWAV16(audio.Clip{Rate: 16000, Channels: 1, Samples: long[:40*audio.SampleRate]})[44:]
	var got []int
	err = g.EncodeStream(ctx, AudioRequest(pcm, encoderv1.AudioFormat_AUDIO_FORMAT_PCM16, 16000), func(w Window) error {
		got = append(got, w.Index)
		return nil
	})
	if err != nil || len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Errorf("EncodeStream windows %v, %v; want [0 1]", got, err)
	}
	mi, err := g.Model(ctx)
	if err != nil || mi.Backend != "cpu" || mi.NMels != 80 {
		t.Errorf("Model = %v, %v", mi, err)
	}

	h := &HTTP{Base: base}
	hr, err := h.Encode(ctx, wav, "audio/wav")
	if err != nil || len(hr.Hidden.Shape) != 3 || hr.Hidden.Shape[0] != 1 || hr.ModelKey == "" || hr.RequestID == "" {
		t.Errorf("HTTP Encode: %v %q %q %v", hr.Hidden.Shape, hr.ModelKey, hr.RequestID, err)
	}
	_, err = h.Encode(ctx, []byte("not audio at all"), "audio/wav")
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusBadRequest || he.Code != "InvalidArgument" {
		t.Errorf("HTTP bad input: %v", err)
	}
	mel := npy.Array{Shape: []int{80, 100}, Data: make([]float32, 8000)}
	lr, err := LogMelRequest(mel)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Encode(ctx, lr); err != nil {
		t.Errorf("log-mel request: %v", err)
	}
	if _, err := LogMelRequest(npy.Array{Shape: []int{2, 80, 10}}); err == nil {
		t.Error("LogMelRequest of a batch of 2: no error")
	}

	rep, err := RunLoad(ctx, LoadOptions{Concurrency: 3, Requests: 6, Send: HTTPSender(h, wav, "audio/wav"), AudioSeconds: 8.45, Windows: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests != 6 || rep.OK != 6 || rep.Refused != 0 || rep.Errors != 0 || rep.P50 > rep.P99 || rep.P99 > rep.Max || rep.RealtimeFactor <= 0 {
		t.Errorf("load report %+v", rep)
	}
}

func abs(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}

func TestIsRefusal(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&HTTPError{Status: 429}, true},
		{&HTTPError{Status: 503}, false},
		{status.Error(codes.ResourceExhausted, "full"), true},
		{status.Error(codes.InvalidArgument, "bad"), false},
		{errors.New("boom"), false},
	} {
		if got := IsRefusal(tc.err); got != tc.want {
			t.Errorf("IsRefusal(%v) = %v", tc.err, got)
		}
	}
}
