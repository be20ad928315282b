package transcribe

import (
	"context"
	"errors"
	"sync"

	"github.com/xdna-whisper/xdna-whisper/encoder/decoder"
)

// errClosed is returned to steps asked of a closed Transcriber.
var errClosed = errors.New("transcribe: transcriber closed")

// scheduler is continuous batching: one goroutine owns a decoder.Batch and
// steps the sequences of every request that is decoding a window, together.
//
// A request "joins" while it decodes a window and "leaves" when done (or
// cancelled). Each joined request submits one stepReq per step (its
// sequences' next tokens) and waits for the logits. The scheduler runs a
// step once every joined request has submitted — so sequences that step in
// lockstep share each weight pass — taking at most maxRows sequences,
// first come first served; the rest go in the next step. Requests join and
// leave between steps.
type scheduler struct {
	dec     *decoder.Decoder
	maxRows int

	mu      sync.Mutex
	joined  int
	pending []*stepReq
	closed  bool
	wake    chan struct{}
	done    chan struct{}

	// stats, read by tests and metrics.
	steps, rows int
	maxSeen     int
}

// stepReq is one request's part of a step.
type stepReq struct {
	in []decoder.Input
	// out receives a copy of each input's logits (reused buffers).
	out  [][]float32
	errc chan error // buffered 1: the scheduler never blocks on it
}

func newScheduler(dec *decoder.Decoder, maxRows int) *scheduler {
	s := &scheduler{dec: dec, maxRows: maxRows, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go s.run()
	return s
}

// join registers a request that will submit steps until leave.
func (s *scheduler) join() {
	s.mu.Lock()
	s.joined++
	s.mu.Unlock()
}

// leave unregisters a joined request; its pending step, if any, is dropped
// unless already taken.
func (s *scheduler) leave(r *stepReq) {
	s.mu.Lock()
	s.joined--
	for i, p := range s.pending {
		if p == r {
			s.pending = append(s.pending[:i], s.pending[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
	s.signal()
}

func (s *scheduler) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// step submits r and waits for its logits, or for ctx.
func (s *scheduler) step(ctx context.Context, r *stepReq) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errClosed
	}
	s.pending = append(s.pending, r)
	s.mu.Unlock()
	s.signal()
	select {
	case err := <-r.errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops the goroutine after the running step; waiting steps fail.
func (s *scheduler) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.signal()
	<-s.done
}

func (s *scheduler) run() {
	defer close(s.done)
	b := s.dec.NewBatch()
	for range s.wake {
		for {
			take, closed := s.ready()
			if closed {
				s.failPending()
				return
			}
			if take == nil {
				break
			}
			s.runStep(b, take)
		}
	}
}

// ready takes the requests of the next step when every joined request has
// submitted (nil when not yet).
func (s *scheduler) ready() ([]*stepReq, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, true
	}
	if len(s.pending) == 0 || len(s.pending) < s.joined {
		return nil, false
	}
	n, rows := 0, 0
	for n < len(s.pending) && (n == 0 || rows+len(s.pending[n].in) <= s.maxRows) {
		rows += len(s.pending[n].in)
		n++
	}
	take := append([]*stepReq(nil), s.pending[:n]...)
	s.pending = append(s.pending[:0], s.pending[n:]...)
	s.steps++
	s.rows += rows
	s.maxSeen = max(s.maxSeen, rows)
	return take, false
}

func (s *scheduler) failPending() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.pending {
		r.errc <- errClosed
	}
	s.pending = nil
}

// runStep advances the taken requests' sequences in one decoder step and
// hands each its logits.
func (s *scheduler) runStep(b *decoder.Batch, take []*stepReq) {
	var in []decoder.Input
	for _, r := range take {
		in = append(in, r.in...)
	}
	out, err := b.Step(context.Background(), in)
	if err != nil && len(take) > 1 {
		// One request's bad input must not fail the others: step them
		// one by one (Step checks inputs before advancing anything).
		for _, r := range take {
			s.runStep(b, []*stepReq{r})
		}
		return
	}
	k := 0
	for _, r := range take {
		if err == nil {
			for i := range r.in {
				r.out[i] = append(r.out[i][:0], out[k]...)
				k++
			}
		}
		r.errc <- err
	}
}

// stats returns the steps run, the sequence rows stepped and the largest step.
func (s *scheduler) stats() (steps, rows, largest int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.steps, s.rows, s.maxSeen
}
