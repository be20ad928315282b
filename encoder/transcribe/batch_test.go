package transcribe

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"
)

// gateEncoder holds the first n window encodes until all n have arrived,
// and their results until all n are computed, so that n requests' windows
// reach the decoder at once (however long each encode takes) and start
// decoding together.
type gateEncoder struct {
	inner         WindowEncoder
	mu            sync.Mutex
	waiting, done int
	n             int
	open, ready   chan struct{}
}

func newGate(inner WindowEncoder, n int) *gateEncoder {
	return &gateEncoder{inner: inner, n: n, open: make(chan struct{}), ready: make(chan struct{})}
}

func (g *gateEncoder) EncodeWindow(ctx context.Context, logMel []float32) ([]float32, int, error) {
	if err := g.barrier(ctx, &g.waiting, g.open); err != nil {
		return nil, 0, err
	}
	out, frames, err := g.inner.EncodeWindow(ctx, logMel)
	if err != nil {
		return nil, 0, err
	}
	if err := g.barrier(ctx, &g.done, g.ready); err != nil {
		return nil, 0, err
	}
	return out, frames, nil
}

// barrier counts one call in *count and waits until n calls have come (then
// ch is closed) or ctx ends; calls after the first n pass at once.
func (g *gateEncoder) barrier(ctx context.Context, count *int, ch chan struct{}) error {
	g.mu.Lock()
	*count++
	if *count == g.n {
		close(ch)
	}
	g.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func gatedMicro(t *testing.T, n, maxBatch int) *Transcriber {
	t.Helper()
	f := microFixture(t)
	tr, err := New(Config{Encoder: newGate(ModelEncoder{f.enc}, n), Decoder: f.dec, Tokenizer: f.tk,
		Generation: f.gen, NMels: 80, MaxBatch: maxBatch, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	return tr
}

type request struct {
	pcm []float32
	o   Options
}

func batchRequests(t *testing.T) []request {
	return []request{
		{jfk(t), Options{Temperatures: []float64{0}, Language: "en", MaxTokens: 60, ForceTokens: true}},
		{noise(20*SampleRate, 0.3, 7), Options{Temperatures: []float64{0}, WithoutTimestamps: true, MaxTokens: 80}},
		{make([]float32, 3*SampleRate), Options{Temperatures: []float64{0}, Prompt: "previous text", MaxTokens: 50, ForceTokens: true}},
		{jfk(t), Options{Temperatures: []float64{0}, Task: "translate", Language: "de", MaxTokens: 70, ForceTokens: true}},
		{jfk(t), Options{Temperatures: []float64{0}, BeamSize: 3, MaxTokens: 40, WordTimestamps: true}},
	}
}

// TestBatchedEqualsAlone: requests decoded together (sequences stepped in
// shared batches of at most MaxBatch rows) give exactly what each gives
// alone, with the same rows in fewer steps.
func TestBatchedEqualsAlone(t *testing.T) {
	reqs := batchRequests(t)
	alone := newMicro(t, 0)
	want := make([]Result, len(reqs))
	for i, r := range reqs {
		var err error
		if want[i], err = alone.Transcribe(context.Background(), r.pcm, r.o, nil); err != nil {
			t.Fatal(err)
		}
	}
	aloneSteps, aloneRows, _ := alone.BatchStats()
	const maxBatch = 4
	tr := gatedMicro(t, len(reqs), maxBatch)
	got := make([]Result, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	// The gate waits for all requests: a deadline turns a stuck gate into a failure.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i, r := range reqs {
		wg.Go(func() { got[i], errs[i] = tr.Transcribe(ctx, r.pcm, r.o, nil) })
	}
	wg.Wait()
	for i := range reqs {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("request %d batched differs from alone:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	steps, rows, largest := tr.BatchStats()
	t.Logf("alone: %d steps, %d rows; together: %d steps, %d rows (mean batch %.2f), largest %d",
		aloneSteps, aloneRows, steps, rows, float64(rows)/float64(steps), largest)
	if rows != aloneRows || steps >= aloneSteps || largest > maxBatch {
		t.Errorf("together: %d steps of %d rows, largest %d; want the %d rows in fewer than %d steps, at most %d rows a step",
			steps, rows, largest, aloneRows, aloneSteps, maxBatch)
	}
}

// TestCancelFreesSlots: a cancelled request returns ctx's error, leaves the
// scheduler (no joined request, nothing pending), and the others finish.
func TestCancelFreesSlots(t *testing.T) {
	tr := gatedMicro(t, 2, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	long := Options{Temperatures: []float64{0}, ForceTokens: true, MaxTokens: 200, Language: "en"}
	var errLong, errOther error
	var wg sync.WaitGroup
	wg.Go(func() { _, errLong = tr.Transcribe(ctx, noise(120*SampleRate, 0.3, 1), long, nil) })
	wg.Go(func() { _, errOther = tr.Transcribe(context.Background(), jfk(t), long, nil) })
	waitFor(t, "steps to run", func() bool { s, _, _ := tr.BatchStats(); return s >= 20 })
	cancel()
	wg.Wait()
	if !errors.Is(errLong, context.Canceled) {
		t.Errorf("cancelled request: err %v, want context.Canceled", errLong)
	}
	if errOther != nil {
		t.Errorf("other request: %v", errOther)
	}
	waitFor(t, "the scheduler to be empty", func() bool {
		tr.sched.mu.Lock()
		defer tr.sched.mu.Unlock()
		return tr.sched.joined == 0 && len(tr.sched.pending) == 0
	})
	if _, err := tr.Transcribe(context.Background(), jfk(t), Options{Temperatures: []float64{0}, MaxTokens: 5}, nil); err != nil {
		t.Errorf("after a cancel: %v", err)
	}
}

// TestEmitError: an error from emit stops the transcription and is returned.
func TestEmitError(t *testing.T) {
	tr := newMicro(t, 0)
	stop := errors.New("client gone")
	_, err := tr.Transcribe(context.Background(), jfk(t), Options{Temperatures: []float64{0}, MaxTokens: 30},
		func(Segment) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("err %v, want %v", err, stop)
	}
}

// TestClosed: a closed Transcriber refuses work with an error.
func TestClosed(t *testing.T) {
	tr := newMicro(t, 0)
	tr.Close()
	if _, err := tr.Transcribe(context.Background(), jfk(t), Options{}, nil); !errors.Is(err, errClosed) {
		t.Errorf("err %v, want %v", err, errClosed)
	}
}

// waitFor polls cond until it holds, failing after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// countingEncoder records the most encodes in flight at once.
type countingEncoder struct {
	inner        WindowEncoder
	mu           sync.Mutex
	now, maxSeen int
}

func (e *countingEncoder) EncodeWindow(ctx context.Context, logMel []float32) ([]float32, int, error) {
	e.mu.Lock()
	e.now++
	e.maxSeen = max(e.maxSeen, e.now)
	e.mu.Unlock()
	defer func() { e.mu.Lock(); e.now--; e.mu.Unlock() }()
	return e.inner.EncodeWindow(ctx, logMel)
}

// TestMaxEncodes: concurrent requests encode one window at a time with
// MaxEncodes 1.
func TestMaxEncodes(t *testing.T) {
	f := microFixture(t)
	enc := &countingEncoder{inner: ModelEncoder{f.enc}}
	tr, err := New(Config{Encoder: enc, Decoder: f.dec, Tokenizer: f.tk, Generation: f.gen, NMels: 80, MaxEncodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = tr.Transcribe(context.Background(), noise(35*SampleRate, 0.2, uint32(i)), Options{Temperatures: []float64{0}, MaxTokens: 5, Language: "en"}, nil)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if enc.maxSeen != 1 {
		t.Errorf("%d encodes at once, want 1", enc.maxSeen)
	}
}
