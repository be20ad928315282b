package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/proto"

	encoderv1 "github.com/xdna-whisper/xdna-whisper/api/encoder/v1"
)

// budget is a number of bytes shared by all requests. Reservations never
// wait: one that would go over the limit fails at once.
type budget struct {
	name  string
	limit int64
	used  atomic.Int64
	set   func(float64) // the gauge that mirrors used
}

// reserve takes n bytes if they fit.
func (b *budget) reserve(n int64) bool {
	for {
		cur := b.used.Load()
		if cur+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(cur, cur+n) {
			b.set(float64(cur + n))
			return true
		}
	}
}

// release returns n bytes.
func (b *budget) release(n int64) { b.set(float64(b.used.Add(-n))) }

// full is the refusal of a reservation of n bytes that does not fit now.
func (b *budget) full(n int64, retry time.Duration) error {
	return errorf(codes.ResourceExhausted, "%s budget full: this request needs %d bytes, %d of %d are held by other requests; retry after %v",
		b.name, n, b.used.Load(), b.limit, retry)
}

// receivers are the requests whose body or message is still arriving. A
// drain cuts them: such a request was never accepted (its input is not in),
// so its client retries elsewhere, and a stalled upload cannot hold the drain.
type receivers struct {
	mu     sync.Mutex
	next   uint64
	cuts   map[uint64]func()
	closed bool
}

// add registers cut, which aborts one reception; remove unregisters it. ok
// is false once the receivers were cut (the server is draining).
func (r *receivers) add(cut func()) (remove func(), ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, false
	}
	if r.cuts == nil {
		r.cuts = map[uint64]func(){}
	}
	id := r.next
	r.next++
	r.cuts[id] = cut
	return func() {
		r.mu.Lock()
		delete(r.cuts, id)
		r.mu.Unlock()
	}, true
}

// cutAll aborts every reception in progress and refuses new ones; it returns
// how many were cut.
func (r *receivers) cutAll() int {
	r.mu.Lock()
	r.closed = true
	cuts := r.cuts
	r.cuts = nil
	r.mu.Unlock()
	for _, cut := range cuts {
		cut()
	}
	return len(cuts)
}

// errShuttingDown refuses work while draining.
func errShuttingDown() error {
	return errorf(codes.Unavailable, "server is shutting down; retry on another replica")
}

// reception is one HTTP request body being received: its reservation in the
// upload budget and whether a drain cut it.
type reception struct {
	s       *Server
	held    int64
	drained atomic.Bool
}

// take reserves n more bytes of the upload budget.
func (rc *reception) take(n int64) error {
	if !rc.s.uploads.reserve(n) {
		return rc.s.uploads.full(n, rc.s.opts.RetryAfter)
	}
	rc.held += n
	return nil
}

// give returns n of the reserved bytes.
func (rc *reception) give(n int64) {
	rc.s.uploads.release(n)
	rc.held -= n
}

// release returns the whole reservation.
func (rc *reception) release() { rc.give(rc.held) }

// receive prepares the reception of r's body and runs consume on it: a body
// declared over MaxRequestBytes is refused at once; the body must arrive
// within ReadTimeout (else 408) and is cut with 503 if the server starts
// draining. consume reserves what it keeps with rc.take. release returns the
// reservation; the caller holds it while what consume kept is in use.
func (s *Server) receive(w http.ResponseWriter, r *http.Request, consume func(rc *reception) error) (release func(), err error) {
	if limit := s.opts.MaxRequestBytes; r.ContentLength > limit {
		return nil, tooLarge(r.ContentLength, limit)
	}
	rc := &reception{s: s}
	ctl := http.NewResponseController(w)
	remove, ok := s.receiving.add(func() {
		rc.drained.Store(true)
		_ = ctl.SetReadDeadline(time.Now())
	})
	if !ok {
		return nil, errShuttingDown()
	}
	defer remove()
	// The deadline stays after a failed read: net/http would otherwise wait
	// for the rest of the body before closing the connection.
	_ = ctl.SetReadDeadline(time.Now().Add(s.opts.ReadTimeout))
	if err := consume(rc); err != nil {
		w.Header().Set("Connection", "close")
		return rc.release, err
	}
	return rc.release, nil
}

// readBody reads an HTTP request body into memory, reserving its bytes in the
// upload budget before they are read (a known Content-Length at once, a
// chunked body as its buffer grows); see receive.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (body []byte, release func(), err error) {
	release, err = s.receive(w, r, func(rc *reception) error {
		var err error
		body, err = s.readAll(rc, r.Body, r.ContentLength)
		return err
	})
	return body, release, err
}

// readAll reads src, of size bytes (-1: unknown), into memory within
// MaxRequestBytes, reserving its buffer in the upload budget before reading
// into it. A body of unknown size grows its buffer by doubling up to
// MaxRequestBytes and no further: the reservation is the buffer's capacity,
// so one body never holds more than MaxRequestBytes of the budget (a body
// over the limit is refused with 413, never with 429 because its buffer
// could not grow). While the buffer is copied, the old one is garbage
// outside the reservation; MemoryBound's second UploadBudget covers it.
func (s *Server) readAll(rc *reception, src io.Reader, size int64) ([]byte, error) {
	limit := s.opts.MaxRequestBytes
	if size >= 0 {
		if err := rc.take(size); err != nil {
			return nil, err
		}
		body := make([]byte, size)
		n, err := io.ReadFull(src, body)
		if err != nil {
			return nil, s.bodyError(err, rc.drained.Load(), int64(n), size)
		}
		return body, nil
	}
	first := min(int64(1<<20), limit)
	if err := rc.take(first); err != nil {
		return nil, err
	}
	body := make([]byte, 0, first)
	for {
		if len(body) == cap(body) {
			if int64(len(body)) >= limit {
				if err := s.probeEnd(rc, src, limit); err != nil {
					return nil, err
				}
				return body, nil
			}
			next := min(2*int64(cap(body)), limit)
			if err := rc.take(next - int64(cap(body))); err != nil {
				return nil, err
			}
			grown := make([]byte, len(body), next)
			copy(grown, body)
			body = grown
		}
		n, err := src.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		if errors.Is(err, io.EOF) {
			return body, nil
		}
		if err != nil {
			return nil, s.bodyError(err, rc.drained.Load(), int64(len(body)), -1)
		}
	}
}

// probeEnd checks that src, whose first limit bytes are read, ends there:
// one more byte is a body over the limit (413).
func (s *Server) probeEnd(rc *reception, src io.Reader, limit int64) error {
	var one [1]byte
	for {
		n, err := src.Read(one[:])
		switch {
		case n > 0:
			return tooLarge(-1, limit)
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return s.bodyError(err, rc.drained.Load(), limit, -1)
		}
	}
}

// bodyError classifies a failed body read: cut by a drain (503), too slow
// (408), or broken off by the client (400).
func (s *Server) bodyError(err error, drained bool, got, want int64) error {
	of := ""
	if want >= 0 {
		of = fmt.Sprintf(" of %d", want)
	}
	switch {
	case drained:
		return errorf(codes.Unavailable, "server is shutting down: the upload was cut after %d%s bytes; retry on another replica", got, of)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &Error{Code: codes.DeadlineExceeded, HTTPStatus: http.StatusRequestTimeout,
			Msg: fmt.Sprintf("request body not received within %v: got %d%s bytes", s.opts.ReadTimeout, got, of)}
	}
	return errorf(codes.InvalidArgument, "reading request body (got %d%s bytes): %v", got, of, err)
}

// grpcUpload is the reservation and reception state of one Encode or
// EncodeStream call, made by the tap before its message is read.
type grpcUpload struct {
	s       *Server
	cancel  context.CancelFunc // ends the call's context
	timer   *time.Timer        // cuts a message not received within ReadTimeout
	remove  func()             // unregisters from s.receiving
	drained atomic.Bool
	timeout atomic.Bool

	mu   sync.Mutex
	held int64
}

type uploadKey struct{}

// grpcReservation is what the tap reserves for a message it has not seen:
// it may be MaxRequestBytes long. (While the message is unmarshalled the
// transport's buffers hold it a second time; MemoryBound counts that.)
func (s *Server) grpcReservation() int64 { return s.opts.MaxRequestBytes }

// tap admits an Encode, EncodeStream or Transcribe call before any of its message is
// read: refused while draining (UNAVAILABLE) or when the upload budget cannot
// hold its message (RESOURCE_EXHAUSTED). Admitted calls are cut if their
// message has not arrived within ReadTimeout or when a drain starts.
func (s *Server) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	switch info.FullMethodName {
	case encoderv1.Encoder_Encode_FullMethodName, encoderv1.Encoder_EncodeStream_FullMethodName, encoderv1.Encoder_Transcribe_FullMethodName:
	default:
		return ctx, nil
	}
	if s.closing.Load() {
		return nil, s.toStatus(errShuttingDown())
	}
	n := s.grpcReservation()
	if !s.uploads.reserve(n) {
		return nil, s.toStatus(s.uploads.full(n, s.opts.RetryAfter))
	}
	ctx, cancel := context.WithCancel(ctx)
	u := &grpcUpload{s: s, cancel: cancel, held: n}
	remove, ok := s.receiving.add(func() { u.drained.Store(true); cancel() })
	if !ok {
		cancel()
		s.uploads.release(n)
		return nil, s.toStatus(errShuttingDown())
	}
	u.remove = remove
	u.timer = time.AfterFunc(s.opts.ReadTimeout, func() { u.timeout.Store(true); cancel() })
	context.AfterFunc(ctx, func() { // the call is over (or was cut)
		u.timer.Stop()
		u.remove()
		u.shrink(0)
	})
	return context.WithValue(ctx, uploadKey{}, u), nil
}

// received marks the call's message as in: it is no longer cut by a drain or
// the read timeout, and its reservation shrinks to the message's size.
func received(ctx context.Context, req proto.Message) {
	u, ok := ctx.Value(uploadKey{}).(*grpcUpload)
	if !ok {
		return
	}
	u.timer.Stop()
	u.remove()
	u.shrink(int64(proto.Size(req)))
}

// shrink lowers the reservation to n bytes.
func (u *grpcUpload) shrink(n int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if n < u.held {
		u.s.uploads.release(u.held - n)
		u.held = n
	}
}

// sendTimeout ends the call if its client does not take a response within
// WriteTimeout, so a client that stops reading cannot hold a drain. The
// returned stop disarms it.
func sendTimeout(ctx context.Context, d time.Duration) (stop func() bool) {
	u, ok := ctx.Value(uploadKey{}).(*grpcUpload)
	if !ok {
		return func() bool { return false }
	}
	return time.AfterFunc(d, u.cancel).Stop
}
