package server

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/mel"
)

// TestNaNAudioFailsOnlyItself replays issue 13's probe with the real encoder:
// three clients send valid WAVs while a fourth sends a float WAV holding a
// NaN, with a batch window long enough for them to share batches. The NaN
// request gets 400 saying where the NaN is; every valid request succeeds.
func TestNaNAudioFailsOnlyItself(t *testing.T) {
	opts := DefaultOptions()
	opts.BatchWindow, opts.MaxBatch = 50*time.Millisecond, 4
	h, _ := realServer(t, opts)
	valid := readFile(t, "../../testdata/audio/jfk_1s_s16.wav")
	samples := make([]float32, 16000)
	for i := range samples {
		samples[i] = float32(0.1 * math.Sin(float64(i)/10))
	}
	samples[8000] = float32(math.NaN())
	nan := audio.EncodeWAVFloat32(audio.Clip{Rate: 16000, Channels: 1, Samples: samples})

	const rounds = 4
	var wg sync.WaitGroup
	errs := make(chan error, 4*rounds)
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				if c == 3 {
					r := h.post(context.Background(), "audio/wav", nan, "")
					var e errorJSON
					_ = json.Unmarshal(r.body, &e)
					if r.status != http.StatusBadRequest || !strings.Contains(e.Error, "sample NaN in frame 8000") {
						errs <- errors.New("NaN WAV: " + http.StatusText(r.status) + ": " + trim(r.body))
					}
					continue
				}
				if r := h.post(context.Background(), "audio/wav", valid, ""); r.err != nil || r.status != http.StatusOK {
					errs <- errors.New("valid WAV beside a NaN one: " + http.StatusText(r.status) + ": " + trim(r.body))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestWindowErrorsArePerWindow drives the batcher with the real encoder:
// windows that slip past the front end (a NaN log-mel, and a finite 3e38 one
// whose hidden states overflow) share a batch with valid windows; each bad
// window gets its own error and every valid window its hidden states.
func TestWindowErrorsArePerWindow(t *testing.T) {
	opts := DefaultOptions()
	opts.BatchWindow, opts.MaxBatch = time.Second, 4
	h, _ := realServer(t, opts)
	b := h.s.batcher
	good, _ := mel.LogMel(nil, 80)
	nan := append([]float32(nil), good...)
	nan[3*mel.Frames+7] = float32(math.NaN())
	huge := make([]float32, len(good))
	for i := range huge {
		huge[i] = 3e38
	}
	inputs := [][]float32{good, nan, good, huge}
	if !b.reserve(len(inputs)) {
		t.Fatal("queue full")
	}
	pending := make([]<-chan result, len(inputs))
	for i, m := range inputs {
		pending[i] = b.submit(context.Background(), m)
	}
	for i, p := range pending {
		r := <-p
		switch i {
		case 0, 2:
			if r.err != nil || len(r.out) != h.s.info.Positions*h.s.info.DModel {
				t.Errorf("valid window %d: %v", i, r.err)
			}
		case 1:
			if r.err == nil || !strings.Contains(r.err.Error(), "log-mel value NaN at [3, 7]") || codeOf(r.err).String() != "InvalidArgument" {
				t.Errorf("NaN window: %v", r.err)
			}
		case 3:
			if r.err == nil || !strings.Contains(r.err.Error(), "not finite") {
				t.Errorf("3e38 window: %v, want a non-finite output error", r.err)
			}
		}
	}
}

// failingEncoder fails any batch holding a window whose first value is
// poison, the way a backend may reject one input for the whole batch. (The
// real encoder cannot be made to fail on finite input; this stands in for a
// future backend that can.)
type failingEncoder struct {
	info   Info
	poison float32
	mu     sync.Mutex
	sizes  []int
}

func (f *failingEncoder) Encode(_ context.Context, in []float32, batch int) ([]float32, error) {
	f.mu.Lock()
	f.sizes = append(f.sizes, batch)
	f.mu.Unlock()
	frame := f.info.NMels * f.info.InputFrames
	for i := range batch {
		if in[i*frame] == f.poison {
			return nil, errors.New("backend rejects window")
		}
	}
	return fakeOutput(f.info, in, batch), nil
}

// TestFailedBatchRerunsWindowsAlone: a batch that fails is re-run window by
// window, so the error reaches only the request whose window caused it.
func TestFailedBatchRerunsWindowsAlone(t *testing.T) {
	f := &failingEncoder{info: fakeInfo(), poison: 13}
	opts := DefaultOptions()
	opts.BatchWindow, opts.MaxBatch = time.Second, 3
	h := start(t, f, fakeInfo(), opts)
	h.waitReady(t)
	results := make([]httpResult, 3)
	var wg sync.WaitGroup
	for i, v := range []float32{1, 13, 2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = h.post(context.Background(), ContentTypeNPY, constMel(t, 80, 3000, v), "")
		}()
	}
	wg.Wait()
	for i, r := range results {
		want := http.StatusOK
		if i == 1 {
			want = http.StatusInternalServerError
		}
		if r.status != want {
			t.Errorf("request %d: status %d, want %d (%s)", i, r.status, want, trim(r.body))
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sizes) < 2 || f.sizes[1] != 3 {
		t.Errorf("batch sizes %v, want the warm-up, a batch of 3, then each window alone", f.sizes)
	}
}
