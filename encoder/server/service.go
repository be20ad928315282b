package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/mel"
)

// Error is a request failure with the gRPC code that classifies it (HTTP maps
// the same codes to 400, 413, 429, 503, ...).
type Error struct {
	Code codes.Code
	Msg  string
	// HTTPStatus overrides the status derived from Code (413, 415).
	HTTPStatus int
}

func (e *Error) Error() string { return e.Msg }

func errorf(code codes.Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// errBackendShape reports a backend that returned the wrong amount of data.
func errBackendShape(got, batch int, info Info) error {
	return fmt.Errorf("backend returned %d values for a batch of %d, want %d ([%d, %d, %d])",
		got, batch, batch*info.Positions*info.DModel, batch, info.Positions, info.DModel)
}

// codeOf classifies any error returned by the encode path.
func codeOf(err error) codes.Code {
	var e *Error
	switch {
	case err == nil:
		return codes.OK
	case errors.As(err, &e):
		return e.Code
	case isStatus(err):
		return status.Code(err) // a failed stream.Send
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	}
	return codes.Internal
}

// isStatus reports whether err is a gRPC status error.
func isStatus(err error) bool {
	_, ok := status.FromError(err)
	return ok
}

// input is one request's payload, whichever transport it came by.
type input struct {
	audio  []byte
	format audio.Format
	rate   int
	logMel []float32
	nMels  int
	frames int
	isMel  bool
	// release returns the upload budget the body holds (nil: none).
	release func()
}

// window is one encoded 30 s window.
type window struct {
	index        int
	startSeconds float64
	audioSeconds float64
	frontend     time.Duration
	result
}

// request carries one call through encode; it is also what gets logged.
type request struct {
	id       string
	method   string
	start    time.Time
	windows  int
	audioSec float64
}

// newRequest names a request: the client's id when it is a valid one (see
// validRequestID), else a generated one. Only a valid id is echoed and logged.
func (s *Server) newRequest(method, clientID string) *request {
	id := clientID
	if !validRequestID(id) {
		id = fmt.Sprintf("r%06d", s.nextID.Add(1))
	}
	return &request{id: id, method: method, start: time.Now()}
}

// maxRequestID bounds the length of a client's request id.
const maxRequestID = 128

// validRequestID reports whether a client's request id may be echoed in a
// header and written to the logs: 1 to maxRequestID characters from
// [A-Za-z0-9._:+/=-] (UUIDs, W3C trace ids, base64 tokens).
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestID {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("._:+/=-", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// encode runs a request through admission, the front end and the batcher,
// calling emit for each window in order. read produces the request's input;
// it is not called when the queue is already full, so a refused request
// costs no body reading or unpacking. maxWindows bounds the windows one call may produce (1 for
// Encode).
func (s *Server) encode(ctx context.Context, req *request, read func() (input, error), maxWindows int, emit func(window) error) error {
	s.active.Add(1)
	defer s.active.Add(-1)
	if s.closing.Load() {
		return errShuttingDown()
	}
	if !s.ready.Load() {
		return errorf(codes.Unavailable, "server is not ready yet (loading or warming up)")
	}
	// A full queue refuses before the body is read (cheap refusals under
	// overload); the slot is reserved only once the body is in, so a slow
	// upload holds no slot.
	if s.batcher.full() {
		return s.queueFull()
	}
	in, err := read()
	if in.release != nil {
		defer in.release()
	}
	if err != nil {
		return err
	}
	// Admission before any decoding, from the input's header: the windows
	// it will make (one queue slot each; several need a stream slot) and the
	// memory decoding and answering it takes (the decode budget).
	p, err := s.plan(in)
	if err != nil {
		return err
	}
	if p.windows > maxWindows {
		return errorf(codes.InvalidArgument, "audio is %.1f s, %d windows of 30 s; Encode takes one window: use EncodeStream", p.seconds, p.windows)
	}
	if p.windows > s.opts.MaxQueue {
		return &Error{Code: codes.InvalidArgument, HTTPStatus: http.StatusRequestEntityTooLarge,
			Msg: fmt.Sprintf("audio is %.1f s, %d windows of 30 s: more than the queue holds (%d windows)", p.seconds, p.windows, s.opts.MaxQueue)}
	}
	if p.windows > 1 {
		release, err := s.acquireStream()
		if err != nil {
			return err
		}
		defer release()
	}
	if !s.batcher.reserve(p.windows) {
		return s.queueFull()
	}
	reserved := p.windows
	defer func() { s.batcher.release(reserved) }()
	if p.bytes > s.opts.DecodeBudget {
		return &Error{Code: codes.InvalidArgument, HTTPStatus: http.StatusRequestEntityTooLarge,
			Msg: fmt.Sprintf("decoding and answering this request takes %d bytes (%s), over the decode budget of %d bytes", p.bytes, p.what, s.opts.DecodeBudget)}
	}
	if !s.decoding.reserve(p.bytes) {
		return s.decoding.full(p.bytes, s.opts.RetryAfter)
	}
	defer s.decoding.release(p.bytes)
	start := time.Now()
	windows, err := s.frontend(req, in)
	frontend := time.Since(start)
	s.metrics.frontend.Observe(frontend.Seconds())
	if err != nil {
		return err
	}
	if len(windows) > p.windows {
		return fmt.Errorf("front end made %d windows, the header promised %d", len(windows), p.windows)
	}
	s.batcher.release(p.windows - len(windows)) // a FLAC stream without a length is planned at the limit
	reserved = len(windows)
	req.windows = len(windows)
	// Submit every window at once so they can share batches, then hand the
	// slots to the batcher (it releases each as it takes the window).
	pending := make([]<-chan result, len(windows))
	for i, w := range windows {
		pending[i] = s.batcher.submit(ctx, w.logMel)
	}
	reserved = 0
	for i, p := range pending {
		var r result
		select {
		case r = <-p:
		case <-ctx.Done():
			return ctx.Err() // queued windows are dropped by the batcher when it reaches them
		}
		if r.err != nil {
			if codeOf(r.err) == codes.Internal {
				return fmt.Errorf("encoding window %d: %w", i, r.err)
			}
			return r.err
		}
		w := window{index: i, startSeconds: windows[i].start, audioSeconds: windows[i].seconds, frontend: frontend, result: r}
		if err := emit(w); err != nil {
			return err
		}
	}
	s.metrics.audioSeconds.Add(req.audioSec)
	return nil
}

// plan is what admitting a request takes, known from its header.
type plan struct {
	windows int
	seconds float64 // -1 when the header does not say
	bytes   int64   // decoded audio, log-mel windows and hidden states held at once
	what    string  // how bytes was reckoned, for the refusal
}

// plan reckons a request's windows and memory from its input's header,
// before anything is decoded. A window holds its log-mel and its hidden
// states until answered, and two more windows' hidden states are being
// packed or sent.
func (s *Server) plan(in input) (plan, error) {
	melBytes := int64(4 * s.info.NMels * s.info.InputFrames)
	outBytes := int64(4 * s.info.Positions * s.info.DModel)
	if in.isMel {
		return plan{windows: 1, seconds: 30, bytes: 4*int64(len(in.logMel)) + melBytes + 3*outBytes,
			what: "one log-mel window and its hidden states"}, nil
	}
	if len(in.audio) == 0 {
		return plan{}, errorf(codes.InvalidArgument, "empty audio: the request carries no bytes")
	}
	h, err := audio.Probe(in.audio, in.format, in.rate)
	if err != nil {
		return plan{}, errorf(codes.InvalidArgument, "%v", err)
	}
	secs := h.Seconds()
	if max := s.opts.MaxAudioSeconds; secs > max {
		return plan{}, errorf(codes.InvalidArgument, "audio: %.2f s long, limit is %.0f s", secs, max)
	}
	frames := h.Frames
	if frames < 0 { // unknown: up to the limit
		frames = int64(math.Ceil(s.opts.MaxAudioSeconds * float64(h.Rate)))
	}
	out := (frames*mel.SampleRate + int64(h.Rate) - 1) / int64(h.Rate)
	windows := max(1, int((out+mel.WindowSamples-1)/mel.WindowSamples))
	load := h.LoadBytes(s.opts.MaxAudioSeconds)
	return plan{windows: windows, seconds: secs, bytes: load + int64(windows)*(melBytes+outBytes) + 2*outBytes,
		what: fmt.Sprintf("%d channels × %d Hz × %.1f s decoded to %d bytes, then %d windows", h.Channels, h.Rate, float64(frames)/float64(h.Rate), load, windows)}, nil
}

// melWindow is one window's log-mel and where it sits in the audio.
type melWindow struct {
	logMel         []float32
	start, seconds float64
}

// frontend turns the input into log-mel windows [NMels, Frames].
func (s *Server) frontend(req *request, in input) ([]melWindow, error) {
	if in.isMel {
		return s.checkLogMel(in)
	}
	if len(in.audio) == 0 {
		return nil, errorf(codes.InvalidArgument, "empty audio: the request carries no bytes")
	}
	samples, err := audio.Load(in.audio, in.format, in.rate, s.opts.MaxAudioSeconds)
	if err != nil {
		return nil, errorf(codes.InvalidArgument, "%v", err)
	}
	req.audioSec = float64(len(samples)) / mel.SampleRate
	var out []melWindow
	for i, w := range mel.Windows(samples) {
		m, err := mel.LogMel(w, s.info.NMels)
		if err != nil {
			return nil, err
		}
		out = append(out, melWindow{logMel: m, start: float64(i * 30), seconds: float64(len(w)) / mel.SampleRate})
	}
	return out, nil
}

// checkLogMel validates a client's log-mel and pads it to a whole window.
func (s *Server) checkLogMel(in input) ([]melWindow, error) {
	if in.nMels == 0 && in.frames == 0 && len(in.logMel) == 0 {
		return nil, errorf(codes.InvalidArgument, "empty log-mel: the request carries no values")
	}
	if err := mel.Check(in.logMel, []int{in.nMels, in.frames}, s.info.NMels); err != nil {
		return nil, errorf(codes.InvalidArgument, "%v", err)
	}
	return []melWindow{{logMel: mel.Pad(in.logMel, in.nMels, in.frames)}}, nil
}

// queueFull is the refusal when the queue has no room.
func (s *Server) queueFull() error {
	return errorf(codes.ResourceExhausted, "queue full (%d windows waiting, capacity %d); retry after %v",
		s.batcher.depth(), s.opts.MaxQueue, s.opts.RetryAfter)
}

// acquireStream takes one of the MaxStreams multi-window slots.
func (s *Server) acquireStream() (func(), error) {
	select {
	case s.streams <- struct{}{}:
		return func() { <-s.streams }, nil
	default:
		return nil, errorf(codes.ResourceExhausted, "too many concurrent multi-window requests (limit %d); retry after %v", s.opts.MaxStreams, s.opts.RetryAfter)
	}
}

// finish records a request's outcome in the metrics and the log.
func (s *Server) finish(req *request, err error) {
	code := codeOf(err)
	elapsed := time.Since(req.start)
	s.metrics.requests.WithLabelValues(req.method, code.String()).Inc()
	if code == codes.OK {
		s.metrics.duration.WithLabelValues(req.method).Observe(elapsed.Seconds())
	}
	level := slog.LevelDebug
	switch code {
	case codes.OK, codes.ResourceExhausted, codes.Canceled, codes.Unavailable:
	case codes.InvalidArgument, codes.DeadlineExceeded, codes.FailedPrecondition, codes.NotFound:
		level = slog.LevelWarn
	default:
		level = slog.LevelError
	}
	attrs := []any{"request_id", req.id, "method", req.method, "code", code.String(),
		"windows", req.windows, "audio_seconds", req.audioSec, "seconds", elapsed.Seconds()}
	if err != nil {
		attrs = append(attrs, "error", err.Error())
	}
	s.log.Log(context.Background(), level, "request", attrs...)
}
