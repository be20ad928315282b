package transcribe

import (
	"context"
	"sync"
)

// DefaultDecodeMemory is the default of Config.DecodeMemory: 64 MiB, e.g.
// 4 windows of whisper-tiny decoded greedily at once (cross K/V 9.2 MB and
// two 448-token self-attention caches of 2.75 MB each per window), 2 of
// whisper-base (18.4 MB and 5.5 MB), or 1 of whisper-base with temperature
// fallback (5 samples). It keeps a whisper-tiny server under 300 MB resident
// with 16 transcriptions in progress; raise it on larger pods for larger
// decoder batches.
const DefaultDecodeMemory = 64 << 20

// DefaultMaxAhead is the default of Config.MaxAhead: two batches of the
// server's default encoder batch (4), so the encoder has the next batch
// while one waits for the decoder.
const DefaultMaxAhead = 8

// decodeSlots bounds the decoder state of the windows decoded at once by a
// memory budget: a window takes its bytes (its cross-attention keys and
// values and the self-attention caches of its sequences, see windowBytes)
// before its K/V are computed and returns them when it is decided. Windows
// that do not fit wait first come, first served; a window larger than the
// whole budget runs alone.
type decodeSlots struct {
	mu      sync.Mutex
	limit   int64
	held    int64
	windows int // windows holding bytes
	queue   []*slotWaiter

	peakBytes   int64 // the most bytes held at once
	peakWindows int   // the most windows holding bytes at once
}

type slotWaiter struct {
	n     int64
	ready chan struct{} // closed when granted
}

func newDecodeSlots(limit int64) *decodeSlots { return &decodeSlots{limit: limit} }

// acquire takes n bytes (at most the whole budget), waiting for them in
// turn until ctx ends. It returns the bytes taken, for release.
func (s *decodeSlots) acquire(ctx context.Context, n int64) (int64, error) {
	n = min(max(n, 1), s.limit)
	s.mu.Lock()
	if len(s.queue) == 0 && s.held+n <= s.limit {
		s.grant(n)
		s.mu.Unlock()
		return n, nil
	}
	w := &slotWaiter{n: n, ready: make(chan struct{})}
	s.queue = append(s.queue, w)
	s.mu.Unlock()
	select {
	case <-w.ready:
		return n, nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-w.ready: // granted while ctx ended: give it back
		s.put(n)
	default:
		for i, q := range s.queue {
			if q == w {
				s.queue = append(s.queue[:i], s.queue[i+1:]...)
				break
			}
		}
		s.wakeLocked() // the head may fit now that w no longer blocks it
	}
	return 0, ctx.Err()
}

// release returns n bytes taken by acquire.
func (s *decodeSlots) release(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put(n)
}

func (s *decodeSlots) grant(n int64) {
	s.held += n
	s.windows++
	s.peakBytes = max(s.peakBytes, s.held)
	s.peakWindows = max(s.peakWindows, s.windows)
}

func (s *decodeSlots) put(n int64) {
	s.held -= n
	s.windows--
	s.wakeLocked()
}

// wakeLocked grants the waiting windows, in order, while the first fits.
func (s *decodeSlots) wakeLocked() {
	for len(s.queue) > 0 && s.held+s.queue[0].n <= s.limit {
		w := s.queue[0]
		s.queue = s.queue[1:]
		s.grant(w.n)
		close(w.ready)
	}
}

// depth is the windows waiting for bytes plus those holding them.
func (s *decodeSlots) depth() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) + s.windows
}

// stats reports the bytes and windows held now and at most so far.
func (s *decodeSlots) stats() (held int64, windows int, peakBytes int64, peakWindows int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held, s.windows, s.peakBytes, s.peakWindows
}
