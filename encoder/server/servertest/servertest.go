// Package servertest runs the real encoder server in-process for other packages' tests: the
// CPU encoder on staged weights, HTTP and gRPC on loopback listeners.
package servertest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/xdna-whisper/xdna-whisper/encoder/model"
	"github.com/xdna-whisper/xdna-whisper/encoder/server"
)

// Start loads weights on the CPU encoder (2 threads) and serves them with the default server
// options until tb ends, when it drains the server and fails tb if serving failed. It returns
// once the server is ready: the HTTP base URL (http://127.0.0.1:port) and the gRPC address.
func Start(tb testing.TB, weights string) (httpURL, grpcAddr string) {
	tb.Helper()
	enc, err := model.Load(weights, model.Options{Threads: 2})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { // after the server's cleanup below (last in, first out)
		if err := enc.Close(); err != nil {
			tb.Error(err)
		}
	})
	info, err := server.InfoFor(weights, "cpu")
	if err != nil {
		tb.Fatal(err)
	}
	opts := server.DefaultOptions()
	opts.ShutdownDelay = 0 // nothing routes to a test server: drain at once
	s, err := server.New(server.ModelEncoder(enc), info, opts)
	if err != nil {
		tb.Fatal(err)
	}
	hl, gl := listen(tb), listen(tb)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, s, hl, gl, time.Minute) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("server: %v", err)
		}
	})
	for deadline := time.Now().Add(time.Minute); !s.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatal("server not ready after 1 min")
		}
	}
	return "http://" + hl.Addr().String(), gl.Addr().String()
}

// listen opens a loopback TCP listener on a port the kernel chooses.
func listen(tb testing.TB) net.Listener {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return l
}
