package server

import (
	"context"
	"math"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	encoderv1 "github.com/xdna-whisper/xdna-whisper/api/encoder/v1"
	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
	"github.com/xdna-whisper/xdna-whisper/encoder/transcribe"
)

// Transcribe transcribes the request's audio, streaming each segment as it
// is decided and then the whole transcription.
func (g *grpcService) Transcribe(req *encoderv1.TranscribeRequest, stream grpc.ServerStreamingServer[encoderv1.TranscribeResponse]) error {
	ctx := stream.Context()
	received(ctx, req)
	s := g.s
	s.active.Add(1)
	defer s.active.Add(-1)
	s.metrics.inFlight.Inc()
	defer s.metrics.inFlight.Dec()
	r := s.newRequest("Transcribe", transcribeRequestID(ctx, req))
	err := g.transcribe(ctx, r, req, stream)
	err = grpcError(err)
	s.finish(r, err)
	return s.toStatus(err)
}

func (g *grpcService) transcribe(ctx context.Context, r *request, req *encoderv1.TranscribeRequest, stream grpc.ServerStreamingServer[encoderv1.TranscribeResponse]) error {
	s := g.s
	if err := s.admitTranscription(); err != nil {
		return err
	}
	o, in, err := transcribeOptions(req)
	if err != nil {
		return err
	}
	if err := checkCapability(o.Task, s.modelID(), s.capabilities()); err != nil {
		return err
	}
	if o.Language != "" {
		if caps := s.capabilities(); len(caps.Languages) > 0 && !contains(caps.Languages, o.Language) {
			return invalid("language", "language %q: model %s knows %s", req.GetLanguage(), s.modelID(), quoteList(caps.Languages))
		}
	}
	ctx, cancel := s.transcribeContext(ctx)
	defer cancel()
	res, err := s.transcribe(ctx, r, in, o, func(seg transcribe.Segment) error {
		stop := sendTimeout(stream.Context(), s.opts.WriteTimeout)
		defer stop()
		return stream.Send(&encoderv1.TranscribeResponse{Event: &encoderv1.TranscribeResponse_Segment{Segment: segmentProto(seg)}, RequestId: r.id})
	})
	if err != nil {
		return err
	}
	stop := sendTimeout(stream.Context(), s.opts.WriteTimeout)
	defer stop()
	return stream.Send(&encoderv1.TranscribeResponse{RequestId: r.id, Event: &encoderv1.TranscribeResponse_Done{Done: &encoderv1.TranscriptionDone{
		Text: tokenizer.ValidUTF8(res.Text), Language: res.Language, DurationSeconds: res.Duration, Segments: int32(len(res.Segments)),
	}}})
}

// transcribeOptions unpacks a TranscribeRequest.
func transcribeOptions(req *encoderv1.TranscribeRequest) (transcribe.Options, transcription, error) {
	a := req.GetAudio()
	if a == nil {
		return transcribe.Options{}, transcription{}, invalid("audio", "request carries no audio")
	}
	f, err := audioFormat(a.GetFormat())
	if err != nil {
		return transcribe.Options{}, transcription{}, err
	}
	o := transcribe.Options{Prompt: req.GetPrompt(), WordTimestamps: req.GetWordTimestamps(),
		WithoutTimestamps: req.GetWithoutTimestamps(), BeamSize: int(req.GetBeamSize())}
	switch req.GetTask() {
	case encoderv1.Task_TASK_UNSPECIFIED, encoderv1.Task_TASK_TRANSCRIBE:
		o.Task = tokenizer.Transcribe
	case encoderv1.Task_TASK_TRANSLATE:
		o.Task = tokenizer.Translate
	default:
		return o, transcription{}, invalid("task", "task %d: want TASK_TRANSCRIBE (1) or TASK_TRANSLATE (2)", req.GetTask())
	}
	if l := req.GetLanguage(); l != "" {
		code, err := tokenizer.LanguageCode(l)
		if err != nil {
			return o, transcription{}, invalid("language", "language: %v", err)
		}
		o.Language = code
	}
	switch t := req.GetTemperature(); {
	case t < 0 || t > 1 || math.IsNaN(t):
		return o, transcription{}, invalid("temperature", "temperature %g: want 0 to 1", t)
	case t > 0:
		o.Temperatures = []float64{t}
	}
	return o, transcription{audio: a.GetData(), format: f, rate: int(a.GetSampleRate())}, nil
}

// segmentProto converts a decided segment.
func segmentProto(s transcribe.Segment) *encoderv1.Segment {
	p := &encoderv1.Segment{Id: int32(s.ID), Seek: int32(s.Seek), Start: s.Start, End: s.End, Text: tokenizer.ValidUTF8(s.Text),
		Temperature: s.Temperature, AvgLogprob: s.AvgLogProb, CompressionRatio: s.CompressionRatio, NoSpeechProb: s.NoSpeechProb}
	p.Tokens = make([]int32, len(s.Tokens))
	for i, t := range s.Tokens {
		p.Tokens[i] = int32(t)
	}
	for _, w := range s.Words {
		p.Words = append(p.Words, &encoderv1.Word{Word: tokenizer.ValidUTF8(w.Word), Start: w.Start, End: w.End, Probability: w.Probability})
	}
	return p
}

// transcribeRequestID is the request's own id, else an x-request-id header.
func transcribeRequestID(ctx context.Context, req *encoderv1.TranscribeRequest) string {
	if id := req.GetRequestId(); id != "" {
		return id
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("x-request-id"); len(v) > 0 {
			return v[0]
		}
	}
	return ""
}
