package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	encoderv1 "github.com/xdna-whisper/xdna-whisper/api/encoder/v1"
	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
)

// These tests use gatedEncoder: they need to hold the backend still to shape
// the queue. Everything else about them (listeners, HTTP and gRPC clients,
// batcher, metrics) is real.

// TestBatchingGroupsQueuedWindows: while one batch computes, four requests
// queue up; when the backend frees up they run as one batch of four, and
// each answer belongs to its own request.
func TestBatchingGroupsQueuedWindows(t *testing.T) {
	g := newGated(fakeInfo(), true)
	opts := DefaultOptions()
	opts.MaxBatch, opts.BatchWindow = 4, 20*time.Millisecond
	h := start(t, g, fakeInfo(), opts)
	g.release(1) // warm-up
	h.waitReady(t)
	<-g.started

	results := make([]httpResult, 5)
	var wg sync.WaitGroup
	send := func(i int) {
		defer wg.Done()
		results[i] = h.post(context.Background(), ContentTypeNPY, constMel(t, 80, 3000, float32(i+1)), "")
	}
	wg.Add(1)
	go send(0)
	if got := <-g.started; got != 1 {
		t.Fatalf("first batch size %d, want 1", got)
	}
	for i := 1; i < 5; i++ {
		wg.Add(1)
		go send(i)
	}
	waitFor(t, "4 queued windows", func() bool { return len(h.s.batcher.queue) == 4 })
	g.release(2)
	wg.Wait()
	if got := g.batchSizes(); fmt.Sprint(got) != "[1 1 4]" {
		t.Errorf("batch sizes %v, want [1 1 4] (warm-up, first request, the four queued)", got)
	}
	for i, r := range results {
		a := hidden(t, r)
		if fmt.Sprint(a.Shape) != "[1 1500 8]" {
			t.Fatalf("request %d: shape %v, want [1 1500 8]", i, a.Shape)
		}
		if want := float32(i + 1); a.Data[0] != want || a.Data[8] != want+1 {
			t.Errorf("request %d got another request's answer: [0,0,0] = %g, want %g", i, a.Data[0], want)
		}
	}
	if n := testutil.ToFloat64(h.s.metrics.windows); n != 6 {
		t.Errorf("windows_encoded_total %g, want 6", n)
	}
}

// TestQueueFullRefusesAtOnce: with the backend busy and the queue full, new
// requests are refused immediately — HTTP 429 with Retry-After, gRPC
// RESOURCE_EXHAUSTED with RetryInfo — and the accepted ones still complete.
func TestQueueFullRefusesAtOnce(t *testing.T) {
	g := newGated(fakeInfo(), true)
	opts := DefaultOptions()
	opts.MaxBatch, opts.MaxQueue, opts.BatchWindow, opts.RetryAfter = 1, 2, 0, 2*time.Second
	h := start(t, g, fakeInfo(), opts)
	g.release(1)
	h.waitReady(t)
	<-g.started

	body := constMel(t, 80, 100, 0)
	accepted := make(chan httpResult, 3)
	go func() { accepted <- h.post(context.Background(), ContentTypeNPY, body, "") }()
	<-g.started // in compute
	for range 2 {
		go func() { accepted <- h.post(context.Background(), ContentTypeNPY, body, "") }()
	}
	waitFor(t, "a full queue", func() bool { return h.s.batcher.depth() == 2 })

	// The refusals must not wait for the backend: a hang fails at this deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := h.post(ctx, ContentTypeNPY, body, "")
	if r.err != nil || r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "2" {
		t.Errorf("HTTP: status %d Retry-After %q err %v, want 429 with Retry-After 2", r.status, r.header.Get("Retry-After"), r.err)
	}
	_, err := h.grpc.Encode(ctx, &encoderv1.EncodeRequest{Input: &encoderv1.EncodeRequest_LogMel{LogMel: &encoderv1.LogMel{NMels: 80, Frames: 1, Data: make([]byte, 320)}}})
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Errorf("gRPC: %v, want RESOURCE_EXHAUSTED", err)
	}
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri
		}
	}
	if retry == nil || retry.RetryDelay.AsDuration() != 2*time.Second {
		t.Errorf("gRPC refusal details %v, want RetryInfo 2s", st.Details())
	}

	g.release(3)
	for range 3 {
		if r := <-accepted; r.status != http.StatusOK {
			t.Errorf("accepted request: status %d %s", r.status, trim(r.body))
		}
	}
	if n := h.requests("http_encode", "ResourceExhausted"); n != 1 {
		t.Errorf("requests_total{http_encode,ResourceExhausted} = %g, want 1", n)
	}
}

// TestCancelledRequestLeavesQueue: a queued request whose client gives up
// (cancel or deadline) returns at once and its window is never computed.
func TestCancelledRequestLeavesQueue(t *testing.T) {
	g := newGated(fakeInfo(), true)
	opts := DefaultOptions()
	opts.MaxBatch, opts.BatchWindow = 1, 0
	h := start(t, g, fakeInfo(), opts)
	g.release(1)
	h.waitReady(t)
	<-g.started

	mel := &encoderv1.EncodeRequest{Input: &encoderv1.EncodeRequest_LogMel{LogMel: &encoderv1.LogMel{NMels: 80, Frames: 1, Data: make([]byte, 320)}}}
	first := make(chan error, 1)
	go func() { _, err := h.grpc.Encode(context.Background(), mel); first <- err }()
	<-g.started

	ctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan error, 1)
	go func() { _, err := h.grpc.Encode(ctx, mel); cancelled <- err }()
	dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer dcancel()
	deadline := make(chan error, 1)
	go func() { _, err := h.grpc.Encode(dctx, mel); deadline <- err }()
	waitFor(t, "2 queued windows", func() bool { return len(h.s.batcher.queue) == 2 })
	cancel()
	if err := <-cancelled; status.Code(err) != codes.Canceled {
		t.Errorf("cancelled request: %v, want CANCELED", err)
	}
	if err := <-deadline; status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("request past its deadline: %v, want DEADLINE_EXCEEDED", err)
	}
	// The client can see its deadline a moment before the server does.
	waitFor(t, "the server to give up on both", func() bool { return testutil.ToFloat64(h.s.metrics.inFlight) == 1 })
	g.release(1)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the dropped windows", func() bool {
		return testutil.ToFloat64(h.s.metrics.windowsDropped) == 2
	})
	if got := g.batchSizes(); fmt.Sprint(got) != "[1 1]" {
		t.Errorf("backend ran batches %v, want [1 1]: the abandoned windows must not be computed", got)
	}
}

// TestAbandonedBatchIsCancelled: when every request of a computing batch goes
// away, the backend's context is cancelled (nothing computes for nobody).
func TestAbandonedBatchIsCancelled(t *testing.T) {
	g := newGated(fakeInfo(), true)
	opts := DefaultOptions()
	opts.MaxBatch = 1
	h := start(t, g, fakeInfo(), opts)
	g.release(1)
	h.waitReady(t)
	<-g.started
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := h.grpc.Encode(ctx, &encoderv1.EncodeRequest{Input: &encoderv1.EncodeRequest_LogMel{LogMel: &encoderv1.LogMel{NMels: 80, Frames: 1, Data: make([]byte, 320)}}})
		done <- err
	}()
	<-g.started
	cancel()
	if err := <-done; status.Code(err) != codes.Canceled {
		t.Fatalf("%v, want CANCELED", err)
	}
	// The gated backend returns only through its context here: no token is
	// released. A later request proves the batcher moved on.
	r := make(chan httpResult, 1)
	go func() { r <- h.post(context.Background(), ContentTypeNPY, constMel(t, 80, 10, 1), "") }()
	<-g.started
	g.release(1)
	if res := <-r; res.status != http.StatusOK {
		t.Fatalf("next request: %d %s", res.status, trim(res.body))
	}
}

// TestReadinessAfterWarmup: /readyz and gRPC health say not ready until the
// warm-up window has been encoded; /healthz is up from the start.
func TestReadinessAfterWarmup(t *testing.T) {
	g := newGated(fakeInfo(), true)
	h := start(t, g, fakeInfo(), DefaultOptions())
	waitFor(t, "/healthz", func() bool {
		resp, err := http.Get(h.base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	<-g.started // warm-up is computing, held by the gate
	resp, err := http.Get(h.base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz during warm-up: %d, want 503", resp.StatusCode)
	}
	hc := healthpb.NewHealthClient(h.conn)
	hr, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: serviceName})
	if err != nil || hr.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health during warm-up: %v %v, want NOT_SERVING", hr, err)
	}
	r := h.post(context.Background(), ContentTypeNPY, constMel(t, 80, 10, 1), "")
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("encode during warm-up: %d, want 503", r.status)
	}
	g.release(1)
	h.waitReady(t)
	hr, err = hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: serviceName})
	if err != nil || hr.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health after warm-up: %v %v, want SERVING", hr, err)
	}
}

// TestDrainFinishesAcceptedRequests: a shutdown with requests computing and
// queued (over both transports) turns readiness off, refuses new work, and
// completes every accepted request before Run returns nil.
func TestDrainFinishesAcceptedRequests(t *testing.T) {
	g := newGated(fakeInfo(), true)
	opts := DefaultOptions()
	opts.MaxBatch, opts.BatchWindow = 2, 0
	h := start(t, g, fakeInfo(), opts)
	g.release(1)
	h.waitReady(t)
	<-g.started

	const n = 6
	outcomes := make(chan error, n)
	for i := range n {
		if i%2 == 0 {
			go func() {
				r := h.post(context.Background(), ContentTypeNPY, constMel(t, 80, 50, float32(i)), "")
				if r.err == nil && r.status != http.StatusOK {
					r.err = fmt.Errorf("HTTP %d %s", r.status, trim(r.body))
				}
				outcomes <- r.err
			}()
		} else {
			go func() {
				resp, err := h.grpc.Encode(context.Background(), &encoderv1.EncodeRequest{Input: &encoderv1.EncodeRequest_LogMel{LogMel: &encoderv1.LogMel{NMels: 80, Frames: 1, Data: make([]byte, 320)}}})
				if err == nil && len(resp.HiddenStates.Data) != 1500*8*4 {
					err = fmt.Errorf("%d bytes of hidden states", len(resp.HiddenStates.Data))
				}
				outcomes <- err
			}()
		}
	}
	// All six are accepted: one batch computing (one or two windows, held by
	// the gate), the rest queued.
	waitFor(t, "all requests accepted", func() bool {
		d := len(h.s.batcher.queue)
		return testutil.ToFloat64(h.s.metrics.inFlight) == n && len(g.batchSizes()) == 2 && d+g.batchSizes()[1] == n
	})
	h.stop() // what SIGTERM does in `serve`
	waitFor(t, "draining", func() bool { return !h.s.Ready() })
	if r := h.post(context.Background(), ContentTypeNPY, constMel(t, 80, 10, 1), ""); r.err == nil && r.status != http.StatusServiceUnavailable {
		t.Errorf("new request while draining: status %d, want 503 or a refused connection", r.status)
	}
	g.release(n)
	for range n {
		if err := <-outcomes; err != nil {
			t.Errorf("accepted request lost in drain: %v", err)
		}
	}
	if err := <-h.done; err != nil {
		t.Errorf("Run after drain: %v", err)
	}
	h.done <- nil // for the cleanup
	if ok := h.requests("http_encode", "OK") + h.requests("Encode", "OK"); ok != n {
		t.Errorf("%g requests OK, want %d", ok, n)
	}
}

// TestStreamLimit: with --max-streams 1 and one multi-window request
// computing, a second one is refused at once; single-window requests still go.
func TestStreamLimit(t *testing.T) {
	g := newGated(fakeInfo(), true)
	opts := DefaultOptions()
	opts.MaxStreams, opts.MaxBatch = 1, 1
	h := start(t, g, fakeInfo(), opts)
	g.release(1)
	h.waitReady(t)
	<-g.started

	long := audio.EncodeWAV16(audio.Clip{Rate: 16000, Channels: 1, Samples: make([]float32, 45*16000)})
	first := make(chan error, 1)
	go func() {
		stream, err := h.grpc.EncodeStream(context.Background(), &encoderv1.EncodeRequest{Input: &encoderv1.EncodeRequest_Audio{Audio: &encoderv1.Audio{Data: long}}})
		if err == nil {
			for err == nil {
				_, err = stream.Recv()
			}
			if err == io.EOF {
				err = nil
			}
		}
		first <- err
	}()
	<-g.started // its first window computes, held by the gate
	r := h.post(context.Background(), "audio/wav", long, "")
	if r.status != http.StatusTooManyRequests || !strings.Contains(string(r.body), "too many concurrent multi-window requests (limit 1)") {
		t.Errorf("second long request: %d %s, want 429 naming the stream limit", r.status, trim(r.body))
	}
	short := make(chan httpResult, 1)
	go func() { short <- h.post(context.Background(), ContentTypeNPY, constMel(t, 80, 10, 1), "") }()
	g.release(3)
	if err := <-first; err != nil {
		t.Errorf("first stream: %v", err)
	}
	if r := <-short; r.status != http.StatusOK {
		t.Errorf("single-window request: %d %s", r.status, trim(r.body))
	}
}
