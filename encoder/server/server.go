// Package server is `whisper-encoder serve`: the encoder behind a gRPC API
// (api/encoder/v1, grpc.health.v1, reflection) and an HTTP API (POST
// /v1/encode, /healthz, /readyz, /metrics, /v1/model), with dynamic batching,
// a bounded queue that pushes back when full, limits on every input, readiness
// after a warm-up window and a graceful drain. Given a transcribe.Service it
// also serves OpenAI's transcription API (/v1/audio/transcriptions,
// /v1/audio/translations, /v1/models; transcription*.go) and the Transcribe
// RPC, under the same admission, metrics and drain.
//
// Request path: admission (a slot in the bounded queue, or RESOURCE_EXHAUSTED
// / 429 at once) → front end (decode, mono, resample to 16 kHz, Whisper
// log-mel, or check a given log-mel) → the batcher, which groups queued windows
// into batches of up to MaxBatch within BatchWindow and runs them on the
// BatchEncoder one batch at a time → one response per window, in order.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/xdna-whisper/xdna-whisper/encoder/mel"
	"github.com/xdna-whisper/xdna-whisper/encoder/transcribe"
	"github.com/xdna-whisper/xdna-whisper/internal/redact"
)

// BatchEncoder runs the encoder on a batch: mel is [batch, NMels, Frames] and the
// result [batch, Positions, DModel], both row-major float32. It must honour
// ctx where it can: the server cancels it when every request in the batch has
// gone away.
type BatchEncoder interface {
	Encode(ctx context.Context, mel []float32, batch int) ([]float32, error)
}

// WindowsEncoder is an optional interface of a BatchEncoder that encodes a
// batch's windows [n_mels, frames] each into its own output [positions,
// d_model], so the batcher neither stacks the inputs nor copies each
// window's share out of one batch output (ModelEncoder has it: the CPU
// encoder runs a batch's windows one after another anyway).
type WindowsEncoder interface {
	EncodeWindows(ctx context.Context, mels, outs [][]float32) error
}

// Info describes the served model; /v1/model and GetModel return it.
type Info struct {
	ModelKey        string `json:"modelKey"`
	Backend         string `json:"backend"`
	Engine          string `json:"engine,omitempty"`
	Kernels         string `json:"kernels,omitempty"`
	NMels           int    `json:"nMels"`
	DModel          int    `json:"dModel"`
	Layers          int    `json:"layers"`
	Heads           int    `json:"heads"`
	FFNDim          int    `json:"ffnDim"`
	InputFrames     int    `json:"inputFrames"`
	Positions       int    `json:"positions"`
	Precision       string `json:"precision"`
	Source          string `json:"source"`
	SourcePrecision string `json:"sourcePrecision"`
	LossySource     bool   `json:"lossySource"`
	Parameters      int64  `json:"parameters"`
}

// check validates the fields the server relies on.
func (i Info) check() error {
	switch {
	case i.NMels != 80 && i.NMels != 128:
		return fmt.Errorf("server: model takes %d mel bins, the front end makes 80 or 128", i.NMels)
	case i.InputFrames != mel.Frames:
		return fmt.Errorf("server: model takes %d frames per window, the front end makes %d", i.InputFrames, mel.Frames)
	case i.Positions <= 0 || i.DModel <= 0:
		return fmt.Errorf("server: model output [%d, %d], want positive sizes", i.Positions, i.DModel)
	case i.Backend == "":
		return errors.New("server: model info names no backend")
	}
	return nil
}

// Options are the serving limits and batching parameters.
type Options struct {
	// MaxBatch is the largest batch given to the backend (≥ 1).
	MaxBatch int
	// BatchWindow is how long the batcher waits for more windows after the
	// first one of a batch arrives (0: take only what is already queued).
	BatchWindow time.Duration
	// MaxQueue bounds the windows admitted and not yet computing; beyond it
	// requests are refused with RESOURCE_EXHAUSTED / 429.
	MaxQueue int
	// RetryAfter is the delay suggested to refused clients.
	RetryAfter time.Duration
	// MaxRequestBytes bounds a request body or message.
	MaxRequestBytes int64
	// MaxAudioSeconds bounds the duration of one request's audio.
	MaxAudioSeconds float64
	// MaxStreams bounds concurrent multi-window requests (EncodeStream, and
	// HTTP requests with more than one window).
	MaxStreams int
	// UploadBudget bounds the bytes of request bodies and messages held in
	// memory at once. A request reserves its share before its body is read
	// (HTTP: its Content-Length, or as a chunked body grows; gRPC:
	// MaxRequestBytes until the message is in, then its size, so at most
	// UploadBudget/MaxRequestBytes messages are received at once) and is
	// refused with RESOURCE_EXHAUSTED / 429 when it does not fit.
	UploadBudget int64
	// DecodeBudget bounds the bytes of decoded audio, log-mel windows and
	// hidden states that requests hold at once. Each request's share is
	// reckoned from its header before anything is decoded (see plan); a
	// request that does not fit now is refused with RESOURCE_EXHAUSTED / 429,
	// one that could never fit with 413 / INVALID_ARGUMENT.
	DecodeBudget int64
	// MaxConnections bounds the open connections of each listener (HTTP and
	// gRPC); more wait in the kernel's accept queue.
	MaxConnections int
	// ReadTimeout bounds the time a request body or message may take to
	// arrive (HTTP 408; gRPC CANCELLED).
	ReadTimeout time.Duration
	// WriteTimeout bounds the time a client may take to receive a response
	// (each message of a stream); a client that stops reading is cut.
	WriteTimeout time.Duration
	// ShutdownDelay is how long Run keeps serving new requests after its
	// context ends, with readiness and gRPC health already failing, so
	// endpoints can stop sending traffic before the listeners close.
	ShutdownDelay time.Duration
	// Transcriber serves /v1/audio/transcriptions, /v1/audio/translations
	// and the Transcribe RPC; nil serves the encoder only (those answer 400
	// naming what the model can do).
	Transcriber transcribe.Service
	// ModelID is the model's id in /v1/models and the transcription API's
	// `model` field (empty: the model key); "whisper-1" is accepted as an alias.
	ModelID string
	// MaxTranscriptions bounds the transcriptions in progress (each holds
	// its decoded audio and decoder slots); beyond it requests are refused
	// with RESOURCE_EXHAUSTED / 429. 0 means DefaultMaxTranscriptions.
	MaxTranscriptions int
	// TLS, if set, serves both HTTP and gRPC over TLS with this certificate
	// source (see CertFiles); nil serves plain HTTP and h2c gRPC.
	TLS *CertFiles
	// Auth, if set, requires a bearer token on every HTTP path except
	// /healthz, /readyz (and /metrics unless AuthMetrics) and on every gRPC
	// call except grpc.health.v1.
	Auth *Tokens
	// AuthMetrics also requires the token on /metrics (with Auth).
	AuthMetrics bool
	// Reflection registers gRPC server reflection (off by default: it lists
	// the API to anyone who can connect).
	Reflection bool
	// Logger receives one line per request at debug and failures at warn/error.
	Logger *slog.Logger
	// Registerer receives the metrics (nil: a new registry, see Registry).
	Registerer prometheus.Registerer
	// Gatherer serves /metrics (nil: the registry made for Registerer).
	Gatherer prometheus.Gatherer
}

// DefaultDrainTimeout is the default time Run gives accepted requests to
// finish once draining. With the default ShutdownDelay (5 s) a shutdown takes
// at most 25 s, inside Kubernetes' default termination grace period (30 s).
const DefaultDrainTimeout = 20 * time.Second

// DefaultMaxTranscriptions is the default of Options.MaxTranscriptions.
const DefaultMaxTranscriptions = 16

// DefaultOptions are the flags' defaults.
func DefaultOptions() Options {
	return Options{
		MaxBatch:          4,
		BatchWindow:       5 * time.Millisecond,
		MaxQueue:          32,
		RetryAfter:        time.Second,
		MaxRequestBytes:   64 << 20,
		MaxAudioSeconds:   600,
		MaxStreams:        8,
		MaxTranscriptions: DefaultMaxTranscriptions,
		UploadBudget:      512 << 20,
		DecodeBudget:      512 << 20,
		MaxConnections:    512,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		ShutdownDelay:     5 * time.Second,
	}
}

// check validates the options.
func (o Options) check() error {
	switch {
	case o.MaxBatch < 1:
		return fmt.Errorf("server: max batch %d, want ≥ 1", o.MaxBatch)
	case o.MaxQueue < 1:
		return fmt.Errorf("server: max queue %d, want ≥ 1", o.MaxQueue)
	case o.BatchWindow < 0:
		return fmt.Errorf("server: batch window %v, want ≥ 0", o.BatchWindow)
	case o.MaxRequestBytes < 1:
		return fmt.Errorf("server: max request bytes %d, want ≥ 1", o.MaxRequestBytes)
	case o.MaxAudioSeconds <= 0:
		return fmt.Errorf("server: max audio seconds %g, want > 0", o.MaxAudioSeconds)
	case o.MaxStreams < 1:
		return fmt.Errorf("server: max streams %d, want ≥ 1", o.MaxStreams)
	case o.MaxTranscriptions < 0:
		return fmt.Errorf("server: max transcriptions %d, want ≥ 1 (or 0 for %d)", o.MaxTranscriptions, DefaultMaxTranscriptions)
	case o.UploadBudget < o.MaxRequestBytes:
		return fmt.Errorf("server: upload budget %d bytes, want at least max request bytes (%d) so one request fits", o.UploadBudget, o.MaxRequestBytes)
	case o.MaxConnections < 1:
		return fmt.Errorf("server: max connections %d, want ≥ 1", o.MaxConnections)
	case o.DecodeBudget < 1:
		return fmt.Errorf("server: decode budget %d bytes, want ≥ 1", o.DecodeBudget)
	case o.ReadTimeout <= 0 || o.WriteTimeout <= 0:
		return fmt.Errorf("server: read timeout %v, write timeout %v, want > 0", o.ReadTimeout, o.WriteTimeout)
	case o.ShutdownDelay < 0:
		return fmt.Errorf("server: shutdown delay %v, want ≥ 0", o.ShutdownDelay)
	}
	return nil
}

// Server is one encoder service. Create it with New, call Warmup, serve its
// HTTPHandler and GRPCServer, and on shutdown Drain, then Close once the
// transports have finished their requests (Run does all of this).
type Server struct {
	enc     BatchEncoder
	info    Info
	opts    Options
	log     *slog.Logger
	metrics *metrics
	batcher *batcher
	health  *health.Server
	streams chan struct{}
	gather  prometheus.Gatherer
	started time.Time

	transcribing chan struct{}      // one token per transcription in progress
	cut          context.Context    // ended when a drain times out
	cutCancel    context.CancelFunc // ends cut

	uploads   *budget
	decoding  *budget
	receiving receivers

	active  atomic.Int64 // encode requests being handled
	ready   atomic.Bool
	unready atomic.Bool // shutdown began: readiness and health fail
	closing atomic.Bool // draining: new requests are refused
	nextID  atomic.Uint64
}

// New builds a server for enc, which runs the model described by info.
// It starts the batcher; the server is not ready until Warmup succeeds.
func New(enc BatchEncoder, info Info, opts Options) (*Server, error) {
	if err := info.check(); err != nil {
		return nil, err
	}
	if err := opts.check(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxTranscriptions == 0 {
		opts.MaxTranscriptions = DefaultMaxTranscriptions
	}
	gather := opts.Gatherer
	if opts.Registerer == nil {
		reg := prometheus.NewRegistry()
		opts.Registerer, gather = reg, reg
	}
	if gather == nil {
		gather = prometheus.DefaultGatherer
	}
	m, err := newMetrics(opts.Registerer, info, opts)
	if err != nil {
		return nil, err
	}
	info.Source = redact.URL(info.Source) // served by /v1/model and GetModel: no credentials
	s := &Server{
		enc:     enc,
		info:    info,
		opts:    opts,
		log:     opts.Logger,
		metrics: m,
		health:  health.NewServer(),
		streams: make(chan struct{}, opts.MaxStreams),
		gather:  gather,
		started: time.Now(),

		transcribing: make(chan struct{}, opts.MaxTranscriptions),
		uploads:      &budget{name: "upload", limit: opts.UploadBudget, set: m.uploadBytes.Set},
		decoding:     &budget{name: "decode", limit: opts.DecodeBudget, set: m.decodeBytes.Set},
	}
	s.cut, s.cutCancel = context.WithCancel(context.Background())
	s.setServing(false)
	s.batcher = newBatcher(enc, info, opts, m)
	return s, nil
}

// Info is the served model's description.
func (s *Server) Info() Info { return s.info }

// Ready reports whether the server wants work: warmed up and not shutting down.
func (s *Server) Ready() bool { return s.ready.Load() && !s.unready.Load() }

// Warmup encodes one window of silence through the whole path (front end,
// batcher, backend) and then marks the server ready.
func (s *Server) Warmup(ctx context.Context) error {
	start := time.Now()
	logMel, err := mel.LogMel(nil, s.info.NMels)
	if err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if !s.batcher.reserve(1) {
		return errors.New("warm-up: queue full")
	}
	res := <-s.batcher.submit(ctx, logMel)
	if res.err != nil {
		return fmt.Errorf("warm-up: encoding one window: %w", res.err)
	}
	if want := s.info.Positions * s.info.DModel; len(res.out) != want {
		return fmt.Errorf("warm-up: backend returned %d values for one window, want %d ([%d, %d])", len(res.out), want, s.info.Positions, s.info.DModel)
	}
	s.ready.Store(true)
	s.setServing(true)
	s.log.Info("ready", "model", s.info.ModelKey, "backend", s.info.Backend, "warmup_seconds", time.Since(start).Seconds())
	return nil
}

// Unready begins a shutdown: readiness and gRPC health turn false, so load
// balancers and endpoints stop sending work, while requests that still
// arrive are served.
func (s *Server) Unready() {
	if s.unready.Swap(true) {
		return
	}
	s.health.Shutdown()
	s.log.Info("unready: shutting down", "queued_windows", s.batcher.depth())
}

// Drain stops taking work: new requests are refused with UNAVAILABLE / 503,
// and requests whose body or message is still arriving are cut (they were
// never accepted; their clients retry elsewhere). Accepted requests complete.
func (s *Server) Drain() {
	s.Unready()
	if s.closing.Swap(true) {
		return
	}
	cut := s.receiving.cutAll()
	s.log.Info("draining", "queued_windows", s.batcher.depth(), "uploads_cut", cut)
}

// idle is closed once no encode request is being handled (polled: it is
// used once, at shutdown), or when ctx ends.
func (s *Server) idle(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for s.active.Load() > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	return done
}

// Close stops the batcher after finishing what is queued. Call it after the
// transports have returned from their graceful stop.
func (s *Server) Close() {
	s.Drain()
	s.batcher.close()
}

// setServing sets the gRPC health status of the server and its service.
func (s *Server) setServing(ok bool) {
	status := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		status = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", status)
	s.health.SetServingStatus(serviceName, status)
}
