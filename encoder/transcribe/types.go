// Package transcribe is Whisper's transcribe() in Go: audio of any length →
// 30 s windows → the encoder → the decoder with Whisper's decoding rules
// (language detection, timestamps, temperature fallback, no-speech, prompts,
// long-form seeking) → text and timed segments.
//
// This file is the contract the server (encoder/server) and the serving
// command build on: the options a request carries, what comes back, and the
// capabilities a staged model offers. The implementation lives beside it.
package transcribe

import (
	"context"

	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
)

// SampleRate is the rate of the audio Transcribe takes: 16 kHz mono float32.
const SampleRate = 16000

// Options is one request's decoding choices, as openai/whisper's
// transcribe() and OpenAI's /v1/audio/transcriptions name them. The zero
// value (after Defaulted) is Whisper's default: detect the language,
// transcribe, segment timestamps, greedy with temperature fallback.
type Options struct {
	// Language is an ISO 639-1 code or a language name; "" detects it from
	// the first window.
	Language string
	// Task is tokenizer.Transcribe (the default) or tokenizer.Translate
	// (to English).
	Task tokenizer.Task
	// Temperatures is the fallback schedule: a window is decoded at the
	// first, and again at the next whenever its result fails the
	// compression-ratio or log-probability threshold. Empty means
	// DefaultTemperatures; a single 0 means greedy without fallback.
	Temperatures []float64
	// Prompt is the initial prompt (previous-text context for the first window).
	Prompt string
	// NoConditionOnPrevious stops feeding each window's text as the next
	// window's prompt (Whisper's condition_on_previous_text=False).
	NoConditionOnPrevious bool
	// WithoutTimestamps decodes with <|notimestamps|>: one segment per window.
	WithoutTimestamps bool
	// WordTimestamps asks for per-word times (alignment heads + DTW).
	WordTimestamps bool
	// BeamSize > 1 uses beam search at temperature 0; 0 or 1 is greedy.
	BeamSize int
	// BestOf is the number of samples at temperature > 0 (default 5).
	BestOf int
	// CompressionRatioThreshold (default 2.4), LogProbThreshold (default -1)
	// and NoSpeechThreshold (default 0.6) are Whisper's fallback and
	// no-speech rules; NaN disables one.
	CompressionRatioThreshold float64
	LogProbThreshold          float64
	NoSpeechThreshold         float64
	// MaxTokens caps the sampled tokens of one window (default: half the
	// text context, 224); ForceTokens makes every window sample exactly
	// MaxTokens tokens (EOT suppressed) — for benchmarks, so random weights
	// cannot shorten the work.
	MaxTokens   int
	ForceTokens bool
}

// Word is one word of a segment with its time span in seconds.
type Word struct {
	Word        string  `json:"word"`
	Start       float64 `json:"start"`
	End         float64 `json:"end"`
	Probability float64 `json:"probability"`
}

// Segment is one decided piece of text with its times in seconds from the
// start of the audio, and the statistics of the window decode that made it
// (OpenAI's verbose_json segment fields).
type Segment struct {
	ID               int     `json:"id"`
	Seek             int     `json:"seek"` // the window's start, in mel frames (10 ms)
	Start            float64 `json:"start"`
	End              float64 `json:"end"`
	Text             string  `json:"text"`
	Tokens           []int   `json:"tokens"`
	Temperature      float64 `json:"temperature"`
	AvgLogProb       float64 `json:"avg_logprob"`
	CompressionRatio float64 `json:"compression_ratio"`
	NoSpeechProb     float64 `json:"no_speech_prob"`
	Words            []Word  `json:"words,omitempty"`
}

// Result is a whole transcription.
type Result struct {
	Text     string    `json:"text"`
	Language string    `json:"language"` // ISO 639-1 code
	Duration float64   `json:"duration"` // seconds of audio
	Segments []Segment `json:"segments"`
}

// Capabilities is what a loaded model can do, as /v1/models, `inspect` and
// the WhisperEncoder status report it.
type Capabilities struct {
	Encode     bool     `json:"encode"`
	Transcribe bool     `json:"transcribe"`
	Translate  bool     `json:"translate"`
	Languages  []string `json:"languages,omitempty"` // ISO 639-1 codes; ["en"] for .en models
}

// Emit receives each segment as soon as it is decided, in order. An error
// stops the transcription and is returned by Transcribe (a client that went
// away, for example).
type Emit func(Segment) error

// Service is what a server needs of a transcriber. *Transcriber implements it.
type Service interface {
	Capabilities() Capabilities
	// Transcribe transcribes pcm (SampleRate mono) with o, calling emit
	// (when non-nil) for each segment as it is decided. ctx cancellation
	// frees the request's decoder slots at the next step.
	Transcribe(ctx context.Context, pcm []float32, o Options, emit Emit) (Result, error)
}

// Whisper's defaults (openai/whisper transcribe()).
const (
	DefaultBestOf                    = 5
	DefaultCompressionRatioThreshold = 2.4
	DefaultLogProbThreshold          = -1.0
	DefaultNoSpeechThreshold         = 0.6
	DefaultMaxTokens                 = 224
)

// DefaultTemperatures is Whisper's fallback schedule: 0, 0.2, …, 1.0.
func DefaultTemperatures() []float64 { return []float64{0, 0.2, 0.4, 0.6, 0.8, 1.0} }

// Defaulted returns o with every zero field set to Whisper's default. The
// thresholds' zero value means "default"; NaN disables one.
func (o Options) Defaulted() Options {
	if o.Task == "" {
		o.Task = tokenizer.Transcribe
	}
	if len(o.Temperatures) == 0 {
		o.Temperatures = DefaultTemperatures()
	}
	if o.BestOf == 0 {
		o.BestOf = DefaultBestOf
	}
	if o.CompressionRatioThreshold == 0 {
		o.CompressionRatioThreshold = DefaultCompressionRatioThreshold
	}
	if o.LogProbThreshold == 0 {
		o.LogProbThreshold = DefaultLogProbThreshold
	}
	if o.NoSpeechThreshold == 0 {
		o.NoSpeechThreshold = DefaultNoSpeechThreshold
	}
	if o.MaxTokens == 0 {
		o.MaxTokens = DefaultMaxTokens
	}
	return o
}
