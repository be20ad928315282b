package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xdna-whisper/xdna-whisper/encoder/audio/audiotest"
)

// decoded is how many requests reached the front end (were decoded).
func (h *harness) decoded() uint64 {
	m, err := h.s.gather.Gather()
	if err != nil {
		return 0
	}
	for _, f := range m {
		if f.GetName() == namespace+"_frontend_seconds" {
			return f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

// TestBombRefusedBeforeDecoding replays issue 13 item 3: a FLAC whose header
// declares 600 s of 8-channel 96 kHz audio is refused from its header
// (413, saying what decoding it would take) when it exceeds the decode
// budget, and nothing is decoded.
func TestBombRefusedBeforeDecoding(t *testing.T) {
	real, err := audiotest.FLACBomb(96000, 8, 20)
	if err != nil {
		t.Fatal(err)
	}
	bomb := audiotest.WithFLACLength(real, 600*96000) // the header of FLACBomb(96000, 8, 600), 33 KB
	opts := DefaultOptions()
	opts.DecodeBudget = 200 << 20
	h := start(t, newGated(fakeInfo(), false), fakeInfo(), opts)
	h.waitReady(t)
	before := h.decoded()
	r := h.post(context.Background(), "audio/flac", bomb, "")
	var e errorJSON
	_ = json.Unmarshal(r.body, &e)
	if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(e.Error, "8 channels × 96000 Hz × 600.0 s decoded to") ||
		!strings.Contains(e.Error, "over the decode budget of 209715200 bytes") {
		t.Errorf("%d-byte bomb: %d %q, want 413 naming its decoded size", len(bomb), r.status, e.Error)
	}
	if n := h.decoded(); n != before {
		t.Errorf("%d requests decoded, want none", n-before)
	}
}

// TestLongRequestsRefusedBeforeDecoding replays issue 13 item 4's probe:
// concurrent 590 s FLACs (20 windows each) while the backend is busy. One is
// admitted; the others are refused at once with 429 and Retry-After — by the
// queue (20 + 20 windows > 32) or the decode budget — and only the admitted
// one is decoded.
func TestLongRequestsRefusedBeforeDecoding(t *testing.T) {
	long, err := audiotest.FLACBomb(16000, 1, 590)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, want string
		tune       func(*Options, int64)
	}{
		{"queue", "queue full", func(o *Options, _ int64) {}},
		{"decode budget", "decode budget full", func(o *Options, cost int64) { o.MaxQueue, o.DecodeBudget = 64, cost*3/2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGated(fakeInfo(), true)
			opts := DefaultOptions()
			probe, _ := New(g, fakeInfo(), DefaultOptions())
			p, err := probe.plan(input{audio: long})
			if err != nil || p.windows != 20 {
				t.Fatalf("plan: %+v, %v", p, err)
			}
			tc.tune(&opts, p.bytes)
			h := start(t, g, fakeInfo(), opts)
			g.release(1)
			h.waitReady(t)
			<-g.started
			before := h.decoded()
			results := make(chan httpResult, 4)
			first := make(chan httpResult, 1)
			go func() { first <- h.post(context.Background(), "audio/flac", long, "") }()
			<-g.started // the first is admitted and computing (held by the gate)
			var wg sync.WaitGroup
			for range 3 {
				wg.Add(1)
				go func() { defer wg.Done(); results <- h.post(context.Background(), "audio/flac", long, "") }()
			}
			wg.Wait()
			close(results)
			for r := range results {
				var e errorJSON
				_ = json.Unmarshal(r.body, &e)
				if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || !strings.Contains(e.Error, tc.want) {
					t.Errorf("concurrent 590 s request: %d %q (Retry-After %q), want 429 %q", r.status, e.Error, r.header.Get("Retry-After"), tc.want)
				}
			}
			if n := h.decoded() - before; n != 1 {
				t.Errorf("%d requests decoded, want only the admitted one", n)
			}
			g.release(20)
			if r := <-first; r.status != http.StatusOK {
				t.Errorf("admitted request: %d %s", r.status, trim(r.body))
			}
			waitFor(t, "the decode budget returned", func() bool { return testutil.ToFloat64(h.s.metrics.decodeBytes) == 0 })
		})
	}
}
