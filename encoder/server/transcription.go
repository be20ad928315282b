package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/transcribe"
)

// SetTranscriber makes s serve transcription with t (see
// Options.Transcriber). Call it after New and before serving, typically
// with a Transcriber built over s.WindowEncoder(); t must not be nil.
func (s *Server) SetTranscriber(t transcribe.Service) error {
	if t == nil {
		return errors.New("server: SetTranscriber(nil)")
	}
	if s.opts.Transcriber != nil {
		return errors.New("server: a Transcriber is set already")
	}
	s.opts.Transcriber = t
	return s.metrics.registerTranscriber(s.opts.Registerer, t)
}

// WindowEncoder returns an encoder of single windows that runs them through
// s's batcher, so the windows of concurrent transcriptions (and /v1/encode
// requests) share batches, and count in the queue depth autoscaling reads.
// A window waits for a queue slot (its transcription was admitted already)
// until its context ends.
func (s *Server) WindowEncoder() transcribe.WindowEncoder { return windowEncoder{s} }

type windowEncoder struct{ s *Server }

// EncodeWindow encodes one log-mel window [NMels, Frames].
func (e windowEncoder) EncodeWindow(ctx context.Context, logMel []float32) ([]float32, int, error) {
	s := e.s
	if want := s.info.NMels * s.info.InputFrames; len(logMel) != want {
		return nil, 0, fmt.Errorf("server: window of %d log-mel values, want %d ([%d, %d])", len(logMel), want, s.info.NMels, s.info.InputFrames)
	}
	if !s.batcher.reserve(1) {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for !s.batcher.reserve(1) {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return nil, 0, ctx.Err()
			}
		}
	}
	select {
	case r := <-s.batcher.submit(ctx, logMel):
		return r.out, s.info.Positions, r.err
	case <-ctx.Done():
		return nil, 0, ctx.Err() // the batcher drops the window when it reaches it
	}
}

// BatchStatser is an optional interface of a transcribe.Service (the
// Transcriber has it): decoder steps run, sequence rows they advanced and
// the largest step. /metrics exports the first two as counters, so
// rate(rows)/rate(steps) is the decoder's mean batch size.
type BatchStatser interface {
	BatchStats() (steps, rows, largest int)
}

// DecodeQueueDepther is an optional interface of a transcribe.Service that
// reports the sequences waiting for or holding a decoder slot; when the
// Transcriber implements it, /metrics exports it as
// whisper_encoder_decode_queue_depth.
type DecodeQueueDepther interface {
	DecodeQueueDepth() int
}

// capabilities is what the served model can do: the Transcriber's
// capabilities, or encode only without one.
func (s *Server) capabilities() transcribe.Capabilities {
	if s.opts.Transcriber == nil {
		return transcribe.Capabilities{Encode: true}
	}
	c := s.opts.Transcriber.Capabilities()
	c.Encode = true // this server always serves /v1/encode
	return c
}

// modelIDs are the names the transcription API accepts in `model`: the
// served model's id first, then the aliases.
func (s *Server) modelIDs() []string {
	ids := []string{s.modelID()}
	if s.info.ModelKey != "" && s.info.ModelKey != ids[0] {
		ids = append(ids, s.info.ModelKey)
	}
	return append(ids, WhisperAlias)
}

// modelID is the id /v1/models lists: Options.ModelID, else the model key.
func (s *Server) modelID() string {
	if s.opts.ModelID != "" {
		return s.opts.ModelID
	}
	return s.info.ModelKey
}

// transcription is one admitted transcription request's audio.
type transcription struct {
	audio  []byte
	format audio.Format // FormatUnknown: sniff WAV or FLAC
	rate   int          // of FormatPCM16
	// release returns the upload budget the audio holds (nil: none).
	release func()
}

// admitTranscription refuses a transcription before its body is read when
// the server cannot take it now.
func (s *Server) admitTranscription() error {
	switch {
	case s.closing.Load():
		return errShuttingDown()
	case !s.ready.Load():
		return errorf(codes.Unavailable, "server is not ready yet (loading or warming up)")
	case len(s.transcribing) == cap(s.transcribing):
		return s.transcriptionsFull()
	}
	return nil
}

func (s *Server) transcriptionsFull() error {
	return errorf(codes.ResourceExhausted, "too many transcriptions in progress (limit %d); retry after %v",
		cap(s.transcribing), s.opts.RetryAfter)
}

// transcribe runs one request: the audio's header is checked against the
// duration limit and the decode budget, a transcription slot is taken, the
// audio is decoded to 16 kHz mono (then its upload reservation is returned)
// and handed to the Transcriber, which calls emit for each decided segment.
// ctx ends the transcription when the client goes away or a drain cuts it.
func (s *Server) transcribe(ctx context.Context, req *request, in transcription, o transcribe.Options, emit transcribe.Emit) (transcribe.Result, error) {
	defer func() {
		if in.release != nil {
			in.release()
		}
	}()
	if s.opts.Transcriber == nil {
		return transcribe.Result{}, checkCapability(o.Task, s.modelID(), s.capabilities())
	}
	if c, ok := s.opts.Transcriber.(OptionChecker); ok {
		if err := c.CheckOptions(o); err != nil {
			return transcribe.Result{}, optionError(err)
		}
	}
	h, need, err := s.planTranscription(in)
	if err != nil {
		return transcribe.Result{}, err
	}
	select {
	case s.transcribing <- struct{}{}:
		s.metrics.transcriptions.Inc()
		defer func() { <-s.transcribing; s.metrics.transcriptions.Dec() }()
	default:
		return transcribe.Result{}, s.transcriptionsFull()
	}
	if !s.decoding.reserve(need) {
		return transcribe.Result{}, s.decoding.full(need, s.opts.RetryAfter)
	}
	defer s.decoding.release(need)
	start := time.Now()
	pcm, err := audio.LoadSamples(in.audio, h.Format, in.rate, s.opts.MaxAudioSeconds)
	s.metrics.frontend.Observe(time.Since(start).Seconds())
	if err != nil {
		return transcribe.Result{}, invalid("file", "file: %v", err)
	}
	in.audio = nil
	if in.release != nil { // the encoded file is no longer needed
		in.release()
		in.release = nil
	}
	req.audioSec = float64(pcm.Len()) / transcribe.SampleRate
	counted := func(seg transcribe.Segment) error {
		s.metrics.tokens.Add(float64(len(seg.Tokens)))
		req.windows++ // segments, for the log
		if emit != nil {
			return emit(seg)
		}
		return nil
	}
	var res transcribe.Result
	if st, ok := s.opts.Transcriber.(SamplesTranscriber); ok {
		res, err = st.TranscribeSamples(ctx, pcm, o, counted)
	} else {
		res, err = s.opts.Transcriber.Transcribe(ctx, pcm.Slice(0, pcm.Len()), o, counted)
	}
	if err != nil {
		return res, s.transcribeError(ctx, err)
	}
	s.metrics.audioSeconds.Add(req.audioSec)
	return res, nil
}

// planTranscription reads the audio's header (no sample decoded) and
// reckons what decoding it holds: the decoded audio (Header.LoadBytes) and
// the one window's log-mel and hidden states the Transcriber works on at a
// time. Audio over the duration limit or the decode budget is refused (413).
func (s *Server) planTranscription(in transcription) (audio.Header, int64, error) {
	if len(in.audio) == 0 {
		return audio.Header{}, 0, invalid("file", "the uploaded file is empty")
	}
	h, err := audio.Probe(in.audio, in.format, in.rate)
	if err != nil {
		return h, 0, invalid("file", "file: %v (this server reads WAV and FLAC)", err)
	}
	if secs := h.Seconds(); secs > s.opts.MaxAudioSeconds {
		e := invalid("file", "file: audio is %.1f s long, over the limit of %.0f s", secs, s.opts.MaxAudioSeconds)
		e.Status = http.StatusRequestEntityTooLarge
		return h, 0, e
	}
	window := int64(4 * (s.info.NMels*s.info.InputFrames + s.info.Positions*s.info.DModel))
	need := h.LoadBytes(s.opts.MaxAudioSeconds) + window
	if need > s.opts.DecodeBudget {
		e := invalid("file", "file: decoding this audio takes %d bytes, over the decode budget of %d bytes", need, s.opts.DecodeBudget)
		e.Status = http.StatusRequestEntityTooLarge
		return h, 0, e
	}
	return h, need, nil
}

// transcribeError classifies a failed Transcribe: cut by a drain (503), the
// client gone (cancelled), or the Transcriber's own failure.
func (s *Server) transcribeError(ctx context.Context, err error) error {
	switch {
	case s.cut.Err() != nil:
		return errorf(codes.Unavailable, "server is shutting down: the transcription was cut at the drain timeout; retry on another replica")
	case ctx.Err() != nil:
		return fmt.Errorf("transcription: %w", ctx.Err())
	}
	return optionError(fmt.Errorf("transcription: %w", err))
}

// SamplesTranscriber is an optional interface of a transcribe.Service (the
// Transcriber has it): Transcribe of audio.Samples, so a request's 16 kHz
// mono 16-bit audio is held as audio.Mono16, half its float32 size, for
// the whole transcription.
type SamplesTranscriber interface {
	TranscribeSamples(ctx context.Context, pcm audio.Samples, o transcribe.Options, emit transcribe.Emit) (transcribe.Result, error)
}

// OptionChecker is an optional interface of a transcribe.Service (the
// Transcriber has it): whether it can honour a request's options, checked
// before the audio is decoded. Its refusals, like Transcribe's, wrap
// transcribe.ErrInvalidOption.
type OptionChecker interface {
	CheckOptions(transcribe.Options) error
}

// optionError makes a refused option (transcribe.ErrInvalidOption) a 400
// invalid_request_error about its parameter (gRPC INVALID_ARGUMENT); other
// errors pass unchanged.
func optionError(err error) error {
	if !errors.Is(err, transcribe.ErrInvalidOption) {
		return err
	}
	var oe *transcribe.OptionError
	if errors.As(err, &oe) {
		return invalid(oe.Option, "%s", oe.Error())
	}
	return invalid("", "%v", err)
}

// transcribeContext is ctx, also ended when a drain times out (cutAll).
func (s *Server) transcribeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.cut, cancel)
	return ctx, func() { stop(); cancel() }
}

// cutTranscriptions ends every transcription in progress (the drain timeout
// has passed); they answer 503 / UNAVAILABLE to their clients.
func (s *Server) cutTranscriptions() { s.cutCancel() }
