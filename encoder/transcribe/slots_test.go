package transcribe

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
)

// TestDecodeSlotsOrder: windows that do not fit wait first come, first
// served (a smaller one does not overtake a larger one at the head), a
// cancelled waiter leaves the queue and lets the next in, and a window
// larger than the budget runs alone.
func TestDecodeSlotsOrder(t *testing.T) {
	s := newDecodeSlots(100)
	ctx := context.Background()
	a, err := s.acquire(ctx, 60)
	if err != nil || a != 60 {
		t.Fatalf("acquire 60: %d, %v", a, err)
	}
	granted := make(chan string, 3)
	go func() { n, _ := s.acquire(ctx, 70); granted <- "big"; s.release(n) }()
	waitFor(t, "the big window to queue", func() bool { return s.depth() == 2 })
	cctx, cancel := context.WithCancel(ctx)
	cancelled := make(chan error, 1)
	go func() { _, err := s.acquire(cctx, 10); cancelled <- err }()
	waitFor(t, "the cancelled window to queue", func() bool { return s.depth() == 3 })
	go func() { n, _ := s.acquire(ctx, 40); granted <- "small"; s.release(n) }()
	waitFor(t, "the small window to queue", func() bool { return s.depth() == 4 })
	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	select {
	case g := <-granted:
		t.Fatalf("%s granted while 60 of 100 are held and the 70 waits at the head (the 40 would fit)", g)
	default:
	}
	s.release(a)
	if first, second := <-granted, <-granted; first != "big" || second != "small" {
		t.Errorf("granted %s then %s, want big then small", first, second)
	}
	waitFor(t, "every window to leave", func() bool { return s.depth() == 0 })
	if n, err := s.acquire(ctx, 1000); err != nil || n != 100 {
		t.Errorf("a window over the budget: took %d, %v; want the whole budget (100)", n, err)
	}
	if held, windows, peak, peakWindows := s.stats(); held != 100 || windows != 1 || peak != 100 || peakWindows != 1 { // no two of 60, 70, 40 fit in 100
		t.Errorf("stats: held %d in %d windows, peak %d in %d", held, windows, peak, peakWindows)
	}
}

// TestDecodeMemoryBound: with decode memory for 2½ windows, 5 concurrent
// transcriptions of the real hf-micro never hold more than 2 windows' K/V
// at once, the decode queue depth counts the 3 that wait and the 2 that
// decode, falls back to 0, and each result equals the one alone.
func TestDecodeMemoryBound(t *testing.T) {
	pcm := jfk(t)
	o := Options{Language: "en", Temperatures: []float64{0}}
	probe := newMicro(t, 0)
	want, err := probe.Transcribe(context.Background(), pcm, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, window, _ := probe.DecodeMemory() // one window's bytes
	if window <= 0 {
		t.Fatalf("one window held %d bytes", window)
	}
	f := microFixture(t)
	limit := 2*window + window/2
	tr, err := New(Config{Encoder: ModelEncoder{f.enc}, Decoder: f.dec, Tokenizer: f.tk, Generation: f.gen, NMels: 80, DecodeMemory: limit, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	const n = 5
	tr.sched.mu.Lock() // no decoder step runs: windows pile up holding or waiting
	locked := true
	defer func() {
		if locked {
			tr.sched.mu.Unlock()
		}
	}()
	var wg sync.WaitGroup
	got := make([]Result, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { got[i], errs[i] = tr.Transcribe(context.Background(), pcm, o, nil) })
	}
	waitFor(t, "5 windows in the decode queue", func() bool { return tr.DecodeQueueDepth() == n })
	_, held, windows, _, _ := tr.DecodeMemory()
	if windows != 2 || held != 2*window {
		t.Errorf("while stalled: %d windows hold %d bytes; want 2 holding %d (budget %d)", windows, held, 2*window, limit)
	}
	tr.sched.mu.Unlock()
	locked = false
	wg.Wait()
	for i := range n {
		if errs[i] != nil || got[i].Text != want.Text {
			t.Errorf("request %d: %q, %v; want %q", i, got[i].Text, errs[i], want.Text)
		}
	}
	if d := tr.DecodeQueueDepth(); d != 0 {
		t.Errorf("decode queue depth %d after every request ended", d)
	}
	_, held, windows, peak, peakWindows := tr.DecodeMemory()
	if held != 0 || windows != 0 || peak > limit || peakWindows != 2 {
		t.Errorf("after: %d bytes in %d windows held, peak %d bytes in %d windows; want 0, 0, ≤ %d, 2", held, windows, peak, peakWindows, limit)
	}
}

// TestWindowBytes: a window holds its cross K/V and one full-length
// self-attention cache per live sequence, plus one.
func TestWindowBytes(t *testing.T) {
	tr := newMicro(t, 0)
	cross := int64(tr.dcfg.CrossBytes(tr.dcfg.MaxSourcePositions))
	seq := int64(tr.dcfg.SequenceBytes(tr.dcfg.MaxTargetPositions))
	for _, c := range []struct {
		o    Options
		seqs int64
	}{
		{Options{Temperatures: []float64{0}}, 2},
		{Options{}, DefaultBestOf + 1}, // the fallback schedule samples at > 0
		{Options{Temperatures: []float64{0}, BeamSize: 4}, 9},
	} {
		if got, want := tr.WindowBytes(c.o.Defaulted(), tr.dcfg.MaxSourcePositions), cross+c.seqs*seq; got != want {
			t.Errorf("%+v: %d bytes, want %d", c.o, got, want)
		}
	}
}

// TestOptionErrors: every refused option wraps ErrInvalidOption and names
// the option as the API does, with what it expected and found.
func TestOptionErrors(t *testing.T) {
	tr := newMicro(t, 4)
	pcm := jfk(t)
	for _, c := range []struct {
		o      Options
		option string
		found  string
	}{
		{Options{Language: "klingon"}, "language", `"klingon"`},
		{Options{Temperatures: []float64{0, -1}}, "temperature", "-1 (fallback step 1)"},
		{Options{BeamSize: 5}, "beam_size", "5"},
		{Options{BeamSize: -2}, "beam_size", "-2"},
		{Options{BestOf: -1}, "best_of", "-1"},
		{Options{MaxTokens: 100000}, "max_tokens", "100000"},
		{Options{Task: tokenizer.Task("summarize")}, "task", `"summarize"`},
	} {
		for _, err := range []error{tr.CheckOptions(c.o), func() error { _, err := tr.Transcribe(context.Background(), pcm, c.o, nil); return err }()} {
			var oe *OptionError
			if !errors.Is(err, ErrInvalidOption) || !errors.As(err, &oe) {
				t.Errorf("%+v: %v, want an *OptionError wrapping ErrInvalidOption", c.o, err)
				continue
			}
			if oe.Option != c.option || oe.Found != c.found || oe.Expected == "" {
				t.Errorf("%+v: option %q expected %q found %q; want option %q found %q", c.o, oe.Option, oe.Expected, oe.Found, c.option, c.found)
			}
		}
	}
	if err := tr.CheckOptions(Options{Language: "German", BeamSize: 4}); err != nil {
		t.Errorf("good options: %v", err)
	}
}

// callCountingEncoder counts the windows given to the encoder.
type callCountingEncoder struct {
	inner WindowEncoder
	calls atomic.Int64
}

func (e *callCountingEncoder) EncodeWindow(ctx context.Context, logMel []float32) ([]float32, int, error) {
	e.calls.Add(1)
	return e.inner.EncodeWindow(ctx, logMel)
}

// TestMaxAheadBound: with decode memory for one window and MaxAhead 2, of 6
// concurrent transcriptions of the real hf-micro, while no decoder step
// runs, one window holds decode memory, 2 wait for it encoded, and the other
// 3 wait before their log-mel: the encoder saw 3 windows, not 6. Then every
// result equals the one alone.
func TestMaxAheadBound(t *testing.T) {
	pcm := jfk(t)
	o := Options{Language: "en", Temperatures: []float64{0}}
	probe := newMicro(t, 0)
	want, err := probe.Transcribe(context.Background(), pcm, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, window, _ := probe.DecodeMemory()
	f := microFixture(t)
	const n, ahead = 6, 2
	enc := &callCountingEncoder{inner: ModelEncoder{f.enc}}
	tr, err := New(Config{Encoder: enc, Decoder: f.dec, Tokenizer: f.tk, Generation: f.gen, NMels: 80, DecodeMemory: window, MaxAhead: ahead, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	tr.sched.mu.Lock() // no decoder step runs: the decoding window keeps its memory
	locked := true
	defer func() {
		if locked {
			tr.sched.mu.Unlock()
		}
	}()
	var wg sync.WaitGroup
	got := make([]Result, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { got[i], errs[i] = tr.Transcribe(context.Background(), pcm, o, nil) })
	}
	waitFor(t, "1 window decoding and 2 waiting", func() bool { return tr.DecodeQueueDepth() == 1+ahead })
	if calls, held := enc.calls.Load(), len(tr.ahead); calls != 1+ahead || held != ahead {
		t.Errorf("while stalled: the encoder saw %d windows and %d hold MaxAhead slots; want %d and %d", calls, held, 1+ahead, ahead)
	}
	tr.sched.mu.Unlock()
	locked = false
	wg.Wait()
	for i := range n {
		if errs[i] != nil || got[i].Text != want.Text {
			t.Errorf("request %d: %q, %v; want %q", i, got[i].Text, errs[i], want.Text)
		}
	}
	if held := len(tr.ahead); held != 0 {
		t.Errorf("%d MaxAhead slots held after every request ended", held)
	}
}
