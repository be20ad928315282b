package server

import (
	"context"
	"encoding/binary"
	"math"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	encoderv1 "github.com/xdna-whisper/xdna-whisper/api/encoder/v1"
	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
)

// serviceName is the gRPC service name health checks may ask about.
var serviceName = encoderv1.Encoder_ServiceDesc.ServiceName

// maxResponseBytes bounds a gRPC message the server sends: one window of the
// largest Whisper encoder (1500 × 1280 float32 is 7.7 MB) with room to spare.
const maxResponseBytes = 64 << 20

// maxHeaderBytes bounds the headers (HTTP) and metadata (gRPC) of a request.
const maxHeaderBytes = 64 << 10

// GRPCServer returns a gRPC server with the Encoder service, grpc.health.v1
// and (with Options.Reflection) server reflection registered, its receive
// limit set to MaxRequestBytes,
// its concurrent streams per connection to MaxStreams·4, keepalive, and the
// tap that checks the bearer token (Options.Auth) and admits Encode calls
// into the upload budget before their message is read.
func (s *Server) GRPCServer(extra ...grpc.ServerOption) *grpc.Server {
	opts := append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(min(s.opts.MaxRequestBytes, math.MaxInt32))),
		grpc.MaxSendMsgSize(maxResponseBytes),
		grpc.MaxConcurrentStreams(uint32(max(64, 4*s.opts.MaxStreams))),
		grpc.MaxHeaderListSize(maxHeaderBytes),
		grpc.InTapHandle(s.withAuthTap(s.tap)),
		grpc.ConnectionTimeout(10 * time.Second),
		// Ping a connection idle for 2 minutes and drop it if the ping is not
		// answered in 20 s (a vanished client); close connections idle for
		// 10 minutes. Clients may ping every 10 s, also without calls.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second, MaxConnectionIdle: 10 * time.Minute}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}, extra...)
	g := grpc.NewServer(opts...)
	encoderv1.RegisterEncoderServer(g, &grpcService{s: s})
	healthpb.RegisterHealthServer(g, s.health)
	if s.opts.Reflection {
		reflection.Register(g)
	}
	return g
}

// grpcService adapts Server to the generated EncoderServer interface.
type grpcService struct {
	encoderv1.UnimplementedEncoderServer
	s *Server
}

// Encode encodes one window.
func (g *grpcService) Encode(ctx context.Context, req *encoderv1.EncodeRequest) (*encoderv1.EncodeResponse, error) {
	received(ctx, req)
	r := g.s.newRequest("Encode", requestID(ctx, req))
	// The response is sent after this returns: a client that does not take
	// it within WriteTimeout is cut.
	defer func() { sendTimeout(ctx, g.s.opts.WriteTimeout) }()
	var resp *encoderv1.EncodeResponse
	err := g.run(ctx, r, req, 1, func(w window) error {
		resp = g.response(r, req, w)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// EncodeStream encodes every 30 s window of the input, streaming them in order.
func (g *grpcService) EncodeStream(req *encoderv1.EncodeRequest, stream grpc.ServerStreamingServer[encoderv1.EncodeResponse]) error {
	ctx := stream.Context()
	received(ctx, req)
	r := g.s.newRequest("EncodeStream", requestID(ctx, req))
	maxWindows := int(math.Ceil(g.s.opts.MaxAudioSeconds/30)) + 1
	return g.run(ctx, r, req, maxWindows, func(w window) error {
		stop := sendTimeout(ctx, g.s.opts.WriteTimeout)
		defer stop()
		return stream.Send(g.response(r, req, w))
	})
}

// GetModel describes the served model.
func (g *grpcService) GetModel(context.Context, *encoderv1.GetModelRequest) (*encoderv1.ModelInfo, error) {
	i, c := g.s.info, g.s.capabilities()
	return &encoderv1.ModelInfo{
		ModelKey: i.ModelKey, Backend: i.Backend, NMels: int32(i.NMels), DModel: int32(i.DModel),
		Layers: int32(i.Layers), Heads: int32(i.Heads), FfnDim: int32(i.FFNDim),
		InputFrames: int32(i.InputFrames), Positions: int32(i.Positions), Precision: i.Precision,
		Source: i.Source, SourcePrecision: i.SourcePrecision, LossySource: i.LossySource, Parameters: i.Parameters, Engine: i.Engine,
		Transcribe: c.Transcribe, Translate: c.Translate, Languages: c.Languages, ModelId: g.s.modelID(),
	}, nil
}

// run converts the request, encodes it and turns the outcome into a status.
func (g *grpcService) run(ctx context.Context, r *request, req *encoderv1.EncodeRequest, maxWindows int, emit func(window) error) error {
	g.s.metrics.inFlight.Inc()
	defer g.s.metrics.inFlight.Dec()
	err := g.s.encode(ctx, r, func() (input, error) {
		if err := checkDType(req.GetOutputDtype()); err != nil {
			return input{}, err
		}
		return inputFromProto(req)
	}, maxWindows, emit)
	g.s.finish(r, err)
	return g.s.toStatus(err)
}

// inputFromProto unpacks an EncodeRequest.
func inputFromProto(req *encoderv1.EncodeRequest) (input, error) {
	switch x := req.Input.(type) {
	case *encoderv1.EncodeRequest_Audio:
		f, err := audioFormat(x.Audio.GetFormat())
		if err != nil {
			return input{}, err
		}
		return input{audio: x.Audio.GetData(), format: f, rate: int(x.Audio.GetSampleRate())}, nil
	case *encoderv1.EncodeRequest_LogMel:
		m := x.LogMel
		if len(m.GetData())%4 != 0 {
			return input{}, errorf(codes.InvalidArgument, "log-mel data is %d bytes, not a whole number of float32 values", len(m.GetData()))
		}
		vals := make([]float32, len(m.GetData())/4)
		for i := range vals {
			vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(m.GetData()[4*i:]))
		}
		return input{isMel: true, logMel: vals, nMels: int(m.GetNMels()), frames: int(m.GetFrames())}, nil
	}
	return input{}, errorf(codes.InvalidArgument, "request carries neither audio nor log_mel")
}

// audioFormat maps the wire enum to the decoder's.
func audioFormat(f encoderv1.AudioFormat) (audio.Format, error) {
	switch f {
	case encoderv1.AudioFormat_AUDIO_FORMAT_UNSPECIFIED:
		return audio.FormatUnknown, nil
	case encoderv1.AudioFormat_AUDIO_FORMAT_WAV:
		return audio.FormatWAV, nil
	case encoderv1.AudioFormat_AUDIO_FORMAT_FLAC:
		return audio.FormatFLAC, nil
	case encoderv1.AudioFormat_AUDIO_FORMAT_PCM16:
		return audio.FormatPCM16, nil
	}
	return 0, errorf(codes.InvalidArgument, "audio format %d: want WAV, FLAC or PCM16", f)
}

// checkDType refuses an output dtype this server does not produce (a newer
// client's enum value), rather than silently answering in float32.
func checkDType(d encoderv1.DType) error {
	switch d {
	case encoderv1.DType_D_TYPE_UNSPECIFIED, encoderv1.DType_D_TYPE_FLOAT32, encoderv1.DType_D_TYPE_BFLOAT16:
		return nil
	}
	return errorf(codes.InvalidArgument, "output_dtype %d: want D_TYPE_FLOAT32 (1) or D_TYPE_BFLOAT16 (2)", d)
}

// response builds the message for one window.
func (g *grpcService) response(r *request, req *encoderv1.EncodeRequest, w window) *encoderv1.EncodeResponse {
	return &encoderv1.EncodeResponse{
		HiddenStates: tensorProto(w.out, []int64{1, int64(g.s.info.Positions), int64(g.s.info.DModel)}, req.GetOutputDtype()),
		ModelKey:     g.s.info.ModelKey,
		Timings: &encoderv1.Timings{
			FrontendSeconds: w.frontend.Seconds(), QueueSeconds: w.queueWait.Seconds(),
			ComputeSeconds: w.compute.Seconds(), BatchSize: int32(w.batch),
		},
		WindowIndex:        int32(w.index),
		WindowStartSeconds: w.startSeconds,
		AudioSeconds:       w.audioSeconds,
		RequestId:          r.id,
	}
}

// tensorProto packs float32 values as float32 or bfloat16 bytes (the nearest
// bfloat16, bf16.FromFloat32: sent values keep their subnormals).
func tensorProto(v []float32, shape []int64, dtype encoderv1.DType) *encoderv1.Tensor {
	if dtype == encoderv1.DType_D_TYPE_BFLOAT16 {
		h := make([]uint16, len(v))
		bf16.FromFloat32s(h, v)
		b := make([]byte, 2*len(h))
		for i, x := range h {
			binary.LittleEndian.PutUint16(b[2*i:], x)
		}
		return &encoderv1.Tensor{Shape: shape, Dtype: dtype, Data: b}
	}
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return &encoderv1.Tensor{Shape: shape, Dtype: encoderv1.DType_D_TYPE_FLOAT32, Data: b}
}

// requestID is the request's own id, else an x-request-id header.
func requestID(ctx context.Context, req *encoderv1.EncodeRequest) string {
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

// toStatus converts an encode error to a gRPC status error; a refusal for
// load carries a google.rpc.RetryInfo with the suggested delay.
func (s *Server) toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err // already a status (a failed stream.Send)
	}
	st := status.New(codeOf(err), err.Error())
	if st.Code() == codes.ResourceExhausted {
		if withRetry, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(s.opts.RetryAfter)}); derr == nil {
			st = withRetry
		}
	}
	return st.Err()
}
