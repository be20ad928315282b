package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	contract "github.com/xdna-whisper/xdna-whisper/api/report"
	"github.com/xdna-whisper/xdna-whisper/cmd/internal/encodercli"
	"github.com/xdna-whisper/xdna-whisper/encoder/decoder"
	"github.com/xdna-whisper/xdna-whisper/encoder/server"
	"github.com/xdna-whisper/xdna-whisper/encoder/transcribe"
)

func init() {
	register(command{
		name:    "serve",
		summary: "serve the encoder over gRPC and HTTP (audio or log-mel in, hidden states out)",
		run:     runServe,
	})
}

// defaultTerminationLog is where Kubernetes reads a container's termination message.
const defaultTerminationLog = "/dev/termination-log"

func runServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	mf := encodercli.AddModelFlags(fs)
	def := server.DefaultOptions()
	var (
		httpAddr     = fs.String("http-addr", ":8080", "HTTP listen address (POST /v1/encode, /healthz, /readyz, /metrics, /v1/model)")
		grpcAddr     = fs.String("grpc-addr", ":9090", "gRPC listen address (Encoder, grpc.health.v1, reflection with --grpc-reflection)")
		backend      = fs.String("backend", "auto", "encoder backend: cpu, npu (fails unless an NPU backend is usable) or auto (NPU if usable, else CPU with a warning)")
		maxBatch     = fs.Int("max-batch", def.MaxBatch, "largest batch of 30 s windows given to the backend")
		batchWindow  = fs.Duration("batch-window", def.BatchWindow, "how long a batch waits for more windows after its first")
		maxQueue     = fs.Int("max-queue", def.MaxQueue, "windows admitted and waiting before requests are refused (RESOURCE_EXHAUSTED / 429)")
		retryAfter   = fs.Duration("retry-after", def.RetryAfter, "delay suggested to refused clients")
		maxBytes     = fs.Int64("max-request-bytes", def.MaxRequestBytes, "largest request body / message")
		maxAudio     = fs.Float64("max-audio-seconds", def.MaxAudioSeconds, "longest audio accepted in one request")
		maxStreams   = fs.Int("max-streams", def.MaxStreams, "concurrent multi-window requests (EncodeStream, long HTTP audio)")
		maxTranscr   = fs.Int("max-transcriptions", def.MaxTranscriptions, "transcriptions in progress (HTTP /v1/audio/*, gRPC Transcribe) before new ones are refused (RESOURCE_EXHAUSTED / 429)")
		uploadBudget = fs.Int64("upload-budget", def.UploadBudget, "bytes of request bodies and messages held at once (HTTP: Content-Length reserved before reading; gRPC: --max-request-bytes until the message is in); beyond it requests are refused (RESOURCE_EXHAUSTED / 429)")
		decodeBudget = fs.Int64("decode-budget", def.DecodeBudget, "bytes of decoded audio, log-mel windows and hidden states held at once, reckoned from each request's header before decoding; beyond it requests are refused (RESOURCE_EXHAUSTED / 429, or 413 if one alone is over it)")
		maxConns     = fs.Int("max-connections", def.MaxConnections, "open connections per listener (HTTP, gRPC); more wait to be accepted")
		readTimeout  = fs.Duration("read-timeout", def.ReadTimeout, "time a request body or message may take to arrive (HTTP 408)")
		writeTimeout = fs.Duration("write-timeout", def.WriteTimeout, "time a client may take to receive a response message before it is cut")
		shutdownWait = fs.Duration("shutdown-delay", def.ShutdownDelay, "on SIGTERM, how long to keep serving new requests with readiness already failing, before the drain")
		drainTimeout = fs.Duration("drain-timeout", server.DefaultDrainTimeout, "after --shutdown-delay, how long accepted requests may take to finish (uploads still arriving are cut at once); keep --shutdown-delay + --drain-timeout below the pod's termination grace period")
		defLanguage  = fs.String("default-language", "", "transcription language when a request names none (empty: detect it)")
		defTask      = fs.String("default-task", "transcribe", "transcription task when a request names none: transcribe or translate")
		defBeam      = fs.Int("default-beam-size", 1, "beam size when a request sets none (1: greedy)")
		defWords     = fs.Bool("default-word-timestamps", false, "word timestamps for every transcription")
		decodeMemory = fs.Int64("decode-memory", transcribe.DefaultDecodeMemory, "bytes of decoder state (each window's cross-attention K/V and self-attention caches) of the transcription windows decoded at once; windows beyond it wait their turn (a window larger than it runs alone). Unset under a memory limit: at most a third of what the packed weights leave of the limit")
		decWeights   = fs.String("decoder-weights", decoder.WeightsBF16, "storage of the decoder matrices a decode step streams: bf16, or int8 (weight-only, a power-of-two scale per output row, quantised at load; about half the bytes a step reads)")
		memLimit     = fs.Int64("memory-limit", 0, "bytes the process may hold in all, e.g. the pod's memory limit (0: the container's cgroup limit when one is set): the Go heap's soft limit is what the packed weights leave of it, so garbage is collected before the limit is reached")
		forceTokens  = fs.Int("bench-force-tokens", 0, "benchmarks only: every transcription window samples exactly this many tokens, greedily without fallback, whatever the request asks (random weights cannot shorten the work); 0: off")
		logLevel     = fs.String("log-level", "info", "debug (one line per request), info, warn or error")
		logFormat    = fs.String("log-format", "json", "json or text")
		termLog      = fs.String("termination-log", "", "file for the fatal error message (default "+defaultTerminationLog+" when it exists and is writable)")
		tlsCert      = fs.String("tls-cert", "", "serve HTTP and gRPC over TLS with this PEM certificate (e.g. a mounted Secret's tls.crt; reloaded when it changes); needs --tls-key")
		tlsKey       = fs.String("tls-key", "", "PEM private key of --tls-cert (e.g. tls.key)")
		tokenFile    = fs.String("auth-token-file", "", "require \"Authorization: Bearer <token>\" on every HTTP path but /healthz and /readyz and every gRPC call but health; tokens one per line in this file (re-read when it changes)")
		authMetrics  = fs.Bool("auth-metrics", false, "with --auth-token-file, also require the token on /metrics")
		reflect      = fs.Bool("grpc-reflection", false, "register gRPC server reflection (lists the API to anyone who can connect)")
	)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *mf.Weights == "" || fs.NArg() > 0 {
		return usageError{errors.New("want --weights DIR and no arguments (see -h)")}
	}
	log, err := newLogger(*logLevel, *logFormat)
	if err != nil {
		return usageError{err}
	}
	certs, err := server.CertFilesFromFlags(*tlsCert, *tlsKey, log)
	if err != nil {
		return err
	}
	var tokens *server.Tokens
	if *tokenFile != "" {
		if tokens, err = server.LoadTokens(*tokenFile, log); err != nil {
			return err
		}
	} else if *authMetrics {
		return usageError{errors.New("--auth-metrics needs --auth-token-file")}
	}
	opts := server.Options{
		TLS: certs, Auth: tokens, AuthMetrics: *authMetrics, Reflection: *reflect,
		MaxBatch: *maxBatch, BatchWindow: *batchWindow, MaxQueue: *maxQueue, RetryAfter: *retryAfter,
		MaxRequestBytes: *maxBytes, MaxAudioSeconds: *maxAudio, MaxStreams: *maxStreams, MaxTranscriptions: *maxTranscr, Logger: log,
		UploadBudget: *uploadBudget, DecodeBudget: *decodeBudget, MaxConnections: *maxConns, ReadTimeout: *readTimeout, WriteTimeout: *writeTimeout, ShutdownDelay: *shutdownWait,
	}
	if *defTask != "transcribe" && *defTask != "translate" {
		return usageError{fmt.Errorf("--default-task %q: want transcribe or translate", *defTask)}
	}
	if *decodeMemory < 1 {
		return usageError{fmt.Errorf("--decode-memory %d: want ≥ 1 byte", *decodeMemory)}
	}
	if *decWeights != decoder.WeightsBF16 && *decWeights != decoder.WeightsInt8 {
		return usageError{fmt.Errorf("--decoder-weights %q: want %s or %s", *decWeights, decoder.WeightsBF16, decoder.WeightsInt8)}
	}
	if *memLimit < 0 {
		return usageError{fmt.Errorf("--memory-limit %d: want ≥ 0 bytes (0: the container's limit)", *memLimit)}
	}
	if *forceTokens < 0 {
		return usageError{fmt.Errorf("--bench-force-tokens %d: want ≥ 0 (0: off)", *forceTokens)}
	}
	defs := transcriptionDefaults{Language: *defLanguage, Task: *defTask, BeamSize: *defBeam, WordTimestamps: *defWords, DecodeMemory: *decodeMemory, ForceTokens: *forceTokens, MaxAhead: max(*maxBatch, 1), MemoryLimit: *memLimit, DecoderWeights: *decWeights}
	fs.Visit(func(f *flag.Flag) { defs.DecodeMemorySet = defs.DecodeMemorySet || f.Name == "decode-memory" })
	err = serve(ctx, log, mf, *backend, *httpAddr, *grpcAddr, opts, *drainTimeout, defs)
	if err != nil {
		writeTerminationLog(*termLog, err)
	}
	return err
}

// serve loads the model for the chosen backend and runs the server until ctx ends.
func serve(ctx context.Context, log *slog.Logger, mf encodercli.ModelFlags, backend, httpAddr, grpcAddr string, opts server.Options, drain time.Duration, defs transcriptionDefaults) error {
	chosen, err := chooseBackend(log, backend)
	if err != nil {
		return err
	}
	enc, loadTime, err := mf.Load()
	if err != nil {
		return contract.WithCode(contract.CodeModelLoadFailed, err)
	}
	defer enc.Close()
	info, err := server.InfoFor(*mf.Weights, chosen)
	if err != nil {
		return err
	}
	info.Engine = enc.Backend()
	info.Kernels = enc.Kernels()
	log.Info("model loaded", "model", info.ModelKey, "backend", chosen, "engine", info.Engine, "kernels", info.Kernels, "threads", enc.Threads(),
		"d_model", info.DModel, "layers", info.Layers, "n_mels", info.NMels, "seconds", loadTime.Seconds())
	s, err := server.New(server.ModelEncoder(enc), info, opts)
	if err != nil {
		return err
	}
	// Within a container's memory limit, the heap gets what the packed
	// weights leave, so garbage is collected before the pod would be killed.
	limit := defs.MemoryLimit
	if limit == 0 {
		if limit, err = server.ContainerMemoryLimit(os.DirFS("/")); err != nil {
			log.Warn("no container memory limit read", "error", err)
		}
	}
	defs.MemoryLimit = limit
	closeTr, decPacked, err := attachTranscriber(log, s, *mf.Weights, info.NMels, int64(enc.PackedBytes()), &defs)
	if err != nil {
		return contract.WithCode(contract.CodeModelLoadFailed, err)
	}
	if closeTr != nil {
		defer closeTr()
	}
	// The Go heap's share of the memory bound is the runtime's soft limit, so
	// garbage is collected before it could carry the process past the bound.
	bound, heap := server.MemoryBound(opts, info, 2*int64(enc.PackedBytes()))
	if closeTr != nil { // the Transcriber's decode memory is Go heap too
		bound, heap = bound+defs.DecodeMemory, heap+defs.DecodeMemory
	}
	resident := int64(enc.PackedBytes()) + decPacked
	if soft := server.HeapLimit(heap, limit, resident); soft < debug.SetMemoryLimit(-1) { // a lower GOMEMLIMIT from the environment stays
		debug.SetMemoryLimit(soft)
	}
	log.Info("memory bound", "bound_bytes", bound, "heap_limit_bytes", debug.SetMemoryLimit(-1), "memory_limit_bytes", limit, "model_bytes", 2*enc.PackedBytes(),
		"packed_bytes", resident, "upload_budget", opts.UploadBudget, "decode_budget", opts.DecodeBudget, "decode_memory", defs.DecodeMemory, "max_connections", opts.MaxConnections)
	hl, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	gl, err := net.Listen("tcp", grpcAddr)
	if err != nil {
		_ = hl.Close() // never served: nothing to report
		return fmt.Errorf("grpc listen: %w", err)
	}
	return server.Run(ctx, s, hl, gl, drain)
}

// chooseBackend resolves --backend. This build has only the CPU backend: npu
// fails loudly (never a silent CPU run) and auto falls back to the CPU with a
// warning.
func chooseBackend(log *slog.Logger, backend string) (string, error) {
	switch backend {
	case "cpu":
		return "cpu", nil
	case "npu":
		return "", contract.WithCode(contract.CodeNPUUnavailable, fmt.Errorf("--backend npu: the NPU backend is not available in this build; %s", npuDevices()))
	case "auto":
		log.Warn("backend auto: the NPU backend is not available in this build; running on the CPU", "devices", npuDevices())
		return "cpu", nil
	}
	return "", usageError{fmt.Errorf("--backend %q: want cpu, npu or auto", backend)}
}

// npuDevices says whether XDNA device nodes are visible.
func npuDevices() string {
	nodes, _ := filepath.Glob("/dev/accel/accel*")
	if len(nodes) == 0 {
		return "no XDNA device node (/dev/accel/accel*) is visible to this process"
	}
	return "XDNA device node(s) visible: " + strings.Join(nodes, ", ")
}

// writeTerminationLog records the fatal error where Kubernetes reads it, as
// api/report's Termination (a reason code and the message), so the operator
// can surface it in the WhisperEncoder's conditions.
func writeTerminationLog(path string, err error) {
	msg := append(contract.TerminationFor(err), '\n')
	if path == "" {
		if f, oerr := os.OpenFile(defaultTerminationLog, os.O_WRONLY|os.O_TRUNC, 0); oerr == nil {
			_, werr := f.Write(msg)
			if werr = errors.Join(werr, f.Close()); werr != nil {
				fmt.Fprintf(os.Stderr, "whisper-encoder serve: writing termination log %s: %v\n", defaultTerminationLog, werr)
			}
		}
		return
	}
	if werr := os.WriteFile(path, msg, 0o644); werr != nil {
		fmt.Fprintf(os.Stderr, "whisper-encoder serve: writing termination log %s: %v\n", path, werr)
	}
}

// newLogger builds the slog logger the flags ask for.
func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	ho := &slog.HandlerOptions{Level: l}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, ho)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, ho)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want json or text", format)
}
