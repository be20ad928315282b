package server

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	encoderv1 "github.com/xdna-whisper/xdna-whisper/api/encoder/v1"
	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
)

// harness is a server running on loopback listeners, as `serve` runs it.
type harness struct {
	s      *Server
	base   string // http://127.0.0.1:port
	grpc   encoderv1.EncoderClient
	conn   *grpc.ClientConn
	stop   context.CancelFunc
	done   chan error
	logBuf *bytes.Buffer
}

// start runs a server and stops it (draining) when the test ends.
func start(t *testing.T, b BatchEncoder, info Info, opts Options) *harness {
	t.Helper()
	if opts.ShutdownDelay == DefaultOptions().ShutdownDelay {
		opts.ShutdownDelay = 0 // tests of the delay set their own
	}
	s, err := New(b, info, opts)
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{s: s, base: "http://" + hl.Addr().String(), stop: cancel, done: make(chan error, 1)}
	go func() { h.done <- Run(ctx, s, hl, gl, 30*time.Second) }()
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	h.conn, h.grpc = conn, encoderv1.NewEncoderClient(conn)
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-h.done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

// waitReady polls /readyz until it says ready (bounded: 60 s).
func (h *harness) waitReady(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get(h.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	t.Fatal("server not ready after 60 s")
}

// waitFor polls cond until it holds (bounded: 30 s).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// constMel is a log-mel [nMels, frames] .npy filled with v.
func constMel(t testing.TB, nMels, frames int, v float32) []byte {
	a := npy.Array{Shape: []int{nMels, frames}, Data: make([]float32, nMels*frames)}
	for i := range a.Data {
		a.Data[i] = v
	}
	var buf bytes.Buffer
	if err := npy.Write(&buf, a); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// httpResult is a finished HTTP request.
type httpResult struct {
	status int
	header http.Header
	body   []byte
	err    error
}

// post sends body to /v1/encode.
func (h *harness) post(ctx context.Context, contentType string, body []byte, accept string) httpResult {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.base+"/v1/encode", bytes.NewReader(body))
	if err != nil {
		return httpResult{err: err}
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return httpResult{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return httpResult{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

// hidden decodes a successful .npy response.
func hidden(t *testing.T, r httpResult) npy.Array {
	t.Helper()
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("status %d, err %v, body %s", r.status, r.err, trim(r.body))
	}
	a, err := npy.Read(bytes.NewReader(r.body), 0)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func trim(b []byte) string {
	s := string(b)
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return strings.TrimSpace(s)
}

// counter reads a requests_total series.
func (h *harness) requests(method, code string) float64 {
	return testutil.ToFloat64(h.s.metrics.requests.WithLabelValues(method, code))
}
