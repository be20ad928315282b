package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/client"
	"github.com/xdna-whisper/xdna-whisper/encoder/model"
	"github.com/xdna-whisper/xdna-whisper/encoder/server"
)

// demoServe is the serving half of `whisper-encoder demo`: it serves the
// staged model on loopback, encodes the speech clip through POST /v1/encode,
// prints the output shape, the realtime factor and the server's metrics, and
// shuts the server down with a drain. clip names the audio in wav for the report.
func demoServe(ctx context.Context, w io.Writer, weights, clip string, wav []byte) error {
	samples, err := audio.Load(wav, audio.FormatUnknown, 0, 0)
	if err != nil {
		return fmt.Errorf("demo speech clip %s: %w", clip, err)
	}
	seconds := float64(len(samples)) / audio.SampleRate

	enc, err := model.Load(weights, model.Options{})
	if err != nil {
		return err
	}
	defer enc.Close()
	info, err := server.InfoFor(weights, "cpu")
	if err != nil {
		return err
	}
	info.Engine = enc.Backend()
	info.Kernels = enc.Kernels()
	opts := server.DefaultOptions()
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := server.New(server.ModelEncoder(enc), info, opts)
	if err != nil {
		return err
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = hl.Close() // never served: nothing to report
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- server.Run(sctx, s, hl, gl, time.Minute) }()
	base := "http://" + hl.Addr().String()
	fmt.Fprintf(w, "\nserving %s (%s) on %s (HTTP) and %s (gRPC)\n", info.ModelKey, info.Engine, base, gl.Addr())

	err = demoRequests(ctx, w, base, wav, clip, seconds, func() bool { return s.Ready() })
	stop()
	if rerr := <-done; rerr != nil {
		err = errors.Join(err, fmt.Errorf("server shutdown: %w", rerr))
	}
	if err == nil {
		fmt.Fprintln(w, "server drained and shut down cleanly")
	}
	return err
}

// demoRequests waits for readiness, encodes the clip over HTTP and prints the
// result and the metrics summary.
func demoRequests(ctx context.Context, w io.Writer, base string, wav []byte, clip string, seconds float64, ready func() bool) error {
	for deadline := time.Now().Add(2 * time.Minute); !ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return errors.New("server not ready within 2 minutes")
		}
	}
	hc := &client.HTTP{Base: base}
	t0 := time.Now()
	r, err := hc.Encode(ctx, wav, "audio/wav")
	if err != nil {
		return fmt.Errorf("POST /v1/encode: %w", err)
	}
	took := time.Since(t0)
	fmt.Fprintf(w, "POST /v1/encode %s (%.2f s of speech, %d bytes): hidden states %v float32 in %v\n",
		clip, seconds, len(wav), r.Hidden.Shape, took.Round(time.Millisecond))
	fmt.Fprintf(w, "realtime factor: %.1fx (audio seconds per second of request time); server timing: %s\n", seconds/took.Seconds(), r.ServerTiming)
	metrics, err := hc.Get(ctx, "/metrics")
	if err != nil {
		return fmt.Errorf("GET /metrics: %w", err)
	}
	fmt.Fprintln(w, "metrics:")
	for _, line := range strings.Split(string(metrics), "\n") {
		if demoMetric(line) {
			fmt.Fprintln(w, "  "+line)
		}
	}
	return nil
}

// demoMetric picks the summary lines: the encoder's own series, without
// histogram buckets.
func demoMetric(line string) bool {
	return strings.HasPrefix(line, "whisper_encoder_") && !strings.Contains(line, "_bucket{")
}
