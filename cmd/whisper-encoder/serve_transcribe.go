package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/decoder"
	"github.com/xdna-whisper/xdna-whisper/encoder/server"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
	"github.com/xdna-whisper/xdna-whisper/encoder/transcribe"
)

// transcriptionDefaults are serve's --default-* flags (the operator sets them
// from spec.transcription): what a request that leaves an option unset gets.
type transcriptionDefaults struct {
	Language       string
	Task           string
	BeamSize       int
	WordTimestamps bool
	// DecodeMemory is not a request default but the Transcriber's bound
	// (--decode-memory, transcribe.Config.DecodeMemory).
	DecodeMemory int64
	// MaxAhead is the Transcriber's bound on windows between their log-mel
	// and their decode memory (transcribe.Config.MaxAhead): serve makes it
	// one encoder batch (--max-batch), which keeps the encoder busy while the
	// decoder is not the bottleneck.
	MaxAhead int
	// DecodeMemorySet says --decode-memory was given: it is then kept as is,
	// else a memory limit may lower it (decodeMemoryWithin).
	DecodeMemorySet bool
	// MemoryLimit is --memory-limit, or the container's cgroup limit when
	// that flag is 0 (0: no limit).
	MemoryLimit int64
	// DecoderWeights is --decoder-weights, the decoder's Options.Weights.
	DecoderWeights string
	// ForceTokens > 0 (--bench-force-tokens, benchmarks only) makes every
	// window sample exactly that many tokens greedily, without temperature
	// fallback, whatever the request asks: random weights cannot shorten
	// or lengthen the work.
	ForceTokens int
}

// decodeMemoryWithin is the decode memory for a process that may hold limit
// bytes (0: no limit) of which packed lie outside the Go heap (the packed
// weights): at most def, and at most a third of the heap's room under the
// limit (server.HeapLimit's), so the decoder's state leaves the rest to the
// requests' audio, the windows waiting for the decoder and transient buffers.
// At least 1 byte: a window larger than the budget then runs alone.
func decodeMemoryWithin(def, limit, packed int64) int64 {
	if limit <= 0 {
		return def
	}
	room := limit - packed - server.NonHeapAllowance
	return max(min(def, room/3), 1)
}

// withDefaults serves a Transcriber with d filling what a request leaves
// unset. It keeps the Transcriber's optional interfaces the server looks
// for (decode queue depth, batch stats, option checks).
type withDefaults struct {
	*transcribe.Transcriber
	d transcriptionDefaults
}

var (
	_ server.DecodeQueueDepther = withDefaults{}
	_ server.BatchStatser       = withDefaults{}
	_ server.OptionChecker      = withDefaults{}
	_ server.SamplesTranscriber = withDefaults{}
)

// apply fills what o leaves unset from the defaults.
func (w withDefaults) apply(o transcribe.Options) transcribe.Options {
	if o.Language == "" {
		o.Language = w.d.Language
	}
	if o.Task == "" && w.d.Task != "" {
		o.Task = tokenizer.Task(w.d.Task)
	}
	if o.BeamSize == 0 {
		o.BeamSize = w.d.BeamSize
	}
	o.WordTimestamps = o.WordTimestamps || w.d.WordTimestamps
	if w.d.ForceTokens > 0 {
		o.MaxTokens, o.ForceTokens, o.Temperatures, o.BeamSize = w.d.ForceTokens, true, []float64{0}, 1
	}
	return o
}

// Transcribe applies the defaults, then transcribes.
func (w withDefaults) Transcribe(ctx context.Context, pcm []float32, o transcribe.Options, emit transcribe.Emit) (transcribe.Result, error) {
	return w.Transcriber.Transcribe(ctx, pcm, w.apply(o), emit)
}

// TranscribeSamples applies the defaults, then transcribes.
func (w withDefaults) TranscribeSamples(ctx context.Context, pcm audio.Samples, o transcribe.Options, emit transcribe.Emit) (transcribe.Result, error) {
	return w.Transcriber.TranscribeSamples(ctx, pcm, w.apply(o), emit)
}

// CheckOptions applies the defaults, then checks.
func (w withDefaults) CheckOptions(o transcribe.Options) error {
	return w.Transcriber.CheckOptions(w.apply(o))
}

// attachTranscriber loads the decoder, tokenizer and generation config of a
// staged whole model in dir and makes s serve transcription over its batcher.
// An encoder-only entry serves encoding only (nil closer, no error). It
// returns the decoder's packed bytes, held outside the Go heap. A default
// the model cannot honour (translate on an English-only model) is an error.
func attachTranscriber(log *slog.Logger, s *server.Server, dir string, nMels int, encPacked int64, d *transcriptionDefaults) (closer func(), packedBytes int64, err error) {
	m, err := staged.Open(dir)
	if err != nil {
		return nil, 0, err
	}
	// The decoder packs copies of its weights: once it is loaded, the mapped
	// decoder.safetensors (100 MB for whisper-base) would only hold resident
	// pages nobody reads.
	defer func() { _ = m.Close() }() // a read-only mapping: nothing to flush
	if !m.HasDecoder() {
		log.Info("encoder-only weights: transcription is not served", "weights", dir)
		return nil, 0, nil
	}
	caps := m.Capabilities()
	if d.Task == string(tokenizer.Translate) && !caps.Translate {
		return nil, 0, fmt.Errorf("--default-task translate: the staged model cannot translate (capabilities: %+v)", caps)
	}
	tk, err := m.Tokenizer()
	if err != nil {
		return nil, 0, fmt.Errorf("staged tokenizer: %w", err)
	}
	genData, err := m.GenerationConfig()
	if err != nil {
		return nil, 0, err
	}
	gen := transcribe.DefaultGenerationConfig(tk)
	if len(genData) > 0 {
		if gen, err = transcribe.ParseGenerationConfig(genData, tk); err != nil {
			return nil, 0, fmt.Errorf("staged generation_config.json: %w", err)
		}
	}
	dec, err := decoder.LoadStaged(m, decoder.Options{Weights: d.DecoderWeights})
	if err != nil {
		return nil, 0, fmt.Errorf("staged decoder: %w", err)
	}
	if !d.DecodeMemorySet {
		d.DecodeMemory = decodeMemoryWithin(d.DecodeMemory, d.MemoryLimit, encPacked+int64(dec.PackedBytes()))
	}
	tr, err := transcribe.New(transcribe.Config{Encoder: s.WindowEncoder(), Decoder: dec, Tokenizer: tk, Generation: gen, NMels: nMels, DecodeMemory: d.DecodeMemory, MaxAhead: d.MaxAhead})
	if err != nil {
		dec.Close()
		return nil, 0, err
	}
	if err := s.SetTranscriber(withDefaults{Transcriber: tr, d: *d}); err != nil {
		tr.Close()
		dec.Close()
		return nil, 0, err
	}
	log.Info("transcription served", "decoder", dec.Backend(), "decoder_weights", dec.Weights(), "decode_memory", d.DecodeMemory, "transcribe", caps.Transcribe, "translate", caps.Translate, "languages", len(caps.Languages))
	return func() { tr.Close(); dec.Close() }, int64(dec.PackedBytes()), nil
}
