package transcribe

import (
	"context"
	"errors"
	"fmt"

	"github.com/xdna-whisper/xdna-whisper/encoder/decoder"
	"github.com/xdna-whisper/xdna-whisper/encoder/mel"
	"github.com/xdna-whisper/xdna-whisper/encoder/model"
	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
)

// DefaultMaxBatch is the default bound on the sequences one decoder step
// advances (Config.MaxBatch).
const DefaultMaxBatch = 32

// WindowEncoder runs the encoder on one window: a padded log-mel
// [nMels][mel.Frames] (row-major, Whisper's normalised log-mel) in, the
// last hidden state [positions][d_model] out. The server routes it through
// its encode batcher; ModelEncoder adapts a *model.Encoder.
type WindowEncoder interface {
	EncodeWindow(ctx context.Context, logMel []float32) (hidden []float32, positions int, err error)
}

// ModelEncoder is a WindowEncoder calling a loaded encoder directly.
type ModelEncoder struct{ Encoder *model.Encoder }

// EncodeWindow encodes one window with the wrapped encoder.
func (m ModelEncoder) EncodeWindow(ctx context.Context, logMel []float32) ([]float32, int, error) {
	nMels := len(logMel) / mel.Frames
	out, err := m.Encoder.Encode(ctx, model.Tensor{Shape: []int{1, nMels, mel.Frames}, Data: logMel})
	if err != nil {
		return nil, 0, err
	}
	return out.Data, out.Shape[1], nil
}

// Config is what New needs.
type Config struct {
	// Encoder encodes windows; Decoder, Tokenizer and Generation are the
	// model's text side.
	Encoder    WindowEncoder
	Decoder    *decoder.Decoder
	Tokenizer  *tokenizer.Tokenizer
	Generation GenerationConfig
	// NMels is the encoder's mel bands (80, or 128 for large-v3).
	NMels int
	// MaxBatch bounds the sequences one decoder step advances
	// (default DefaultMaxBatch); more wait for the next step.
	MaxBatch int
	// MaxEncodes bounds the windows encoded at once across requests (0: no
	// bound, e.g. when Encoder is a server's batcher that bounds them). Each
	// running encode holds its workspaces, so the bound caps memory too.
	MaxEncodes int
	// MaxAhead bounds the windows ahead of the decoder across requests:
	// from their log-mel to their decode memory (log-mel computed, being
	// encoded, or encoded and waiting for DecodeMemory), each holding its
	// log-mel or its hidden states (whisper-base: 1 MB, 3 MB). 0 means
	// DefaultMaxAhead. Without the bound every transcription in progress
	// holds a window's hidden states while the decoder is the bottleneck.
	MaxAhead int
	// DecodeMemory bounds the decoder state of the windows decoded at once
	// across requests, in bytes (0: DefaultDecodeMemory): each window holds
	// its cross-attention keys and values and its sequences' self-attention
	// caches (WindowBytes) from when its K/V are computed until it is
	// decided. Windows beyond the budget wait for it in turn; one larger
	// than the whole budget runs alone.
	DecodeMemory int64
	// Seed seeds the sampling at temperatures > 0 (0: a random seed per
	// request). With a seed, equal requests give equal results.
	Seed uint64
}

// Transcriber is Whisper's transcribe() over a loaded model. It is safe for
// concurrent use: the window decodes of all requests share one scheduler
// that steps their sequences together. Close stops it.
type Transcriber struct {
	cfg    Config
	tk     *tokenizer.Tokenizer
	sp     tokenizer.Specials
	multi  bool          // the prompt carries language and task tokens
	encSem chan struct{} // MaxEncodes slots, nil when unbounded
	ahead  chan struct{} // MaxAhead slots
	dcfg   decoder.Config
	sched  *scheduler
	slots  *decodeSlots
}

var _ Service = (*Transcriber)(nil)

// New checks cfg and starts the transcriber's scheduler.
func New(cfg Config) (*Transcriber, error) {
	switch {
	case cfg.Encoder == nil:
		return nil, errors.New("transcribe: Config.Encoder is nil")
	case cfg.Decoder == nil:
		return nil, errors.New("transcribe: Config.Decoder is nil")
	case cfg.Tokenizer == nil:
		return nil, errors.New("transcribe: Config.Tokenizer is nil")
	case cfg.NMels != 80 && cfg.NMels != 128:
		return nil, fmt.Errorf("transcribe: Config.NMels: expected 80 or 128, found %d", cfg.NMels)
	case cfg.MaxEncodes < 0:
		return nil, fmt.Errorf("transcribe: Config.MaxEncodes: expected ≥ 0, found %d", cfg.MaxEncodes)
	case cfg.MaxAhead < 0:
		return nil, fmt.Errorf("transcribe: Config.MaxAhead: expected ≥ 0, found %d", cfg.MaxAhead)
	case cfg.MaxBatch < 0:
		return nil, fmt.Errorf("transcribe: Config.MaxBatch: expected ≥ 0, found %d", cfg.MaxBatch)
	case cfg.DecodeMemory < 0:
		return nil, fmt.Errorf("transcribe: Config.DecodeMemory: expected ≥ 0 bytes, found %d", cfg.DecodeMemory)
	}
	dcfg := cfg.Decoder.Config()
	if v := cfg.Tokenizer.VocabSize(); v != dcfg.Vocab {
		return nil, fmt.Errorf("transcribe: the tokenizer (%s) has %d ids but the decoder %d logits", cfg.Tokenizer.Name(), v, dcfg.Vocab)
	}
	if err := cfg.Generation.Check(cfg.Tokenizer); err != nil {
		return nil, fmt.Errorf("transcribe: %w", err)
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.DecodeMemory == 0 {
		cfg.DecodeMemory = DefaultDecodeMemory
	}
	if cfg.MaxAhead == 0 {
		cfg.MaxAhead = DefaultMaxAhead
	}
	t := &Transcriber{
		cfg: cfg, tk: cfg.Tokenizer, sp: cfg.Tokenizer.Specials(), dcfg: dcfg, multi: cfg.Generation.IsMultilingual,
		sched: newScheduler(cfg.Decoder, cfg.MaxBatch), slots: newDecodeSlots(cfg.DecodeMemory),
		ahead: make(chan struct{}, cfg.MaxAhead),
	}
	if cfg.MaxEncodes > 0 {
		t.encSem = make(chan struct{}, cfg.MaxEncodes)
	}
	return t, nil
}

// Close stops the scheduler; running transcriptions fail. The encoder and
// decoder stay the caller's.
func (t *Transcriber) Close() { t.sched.close() }

// Capabilities reports transcription, translation for multilingual models,
// and the languages.
func (t *Transcriber) Capabilities() Capabilities {
	c := Capabilities{Encode: true, Transcribe: true, Translate: t.multi, Languages: []string{"en"}}
	if t.multi {
		c.Languages = t.tk.Languages()
	}
	return c
}

// DecodeQueueDepth is the windows waiting for decode memory plus those
// holding it (being decoded). A transcription decodes one window at a time,
// so this counts the transcriptions past their window's encoder that wait
// for or occupy the decoder; the encoder's own queue is counted apart (the
// server's whisper_encoder_queue_depth).
func (t *Transcriber) DecodeQueueDepth() int { return t.slots.depth() }

// DecodeMemory reports the decode memory budget (Config.DecodeMemory), the
// bytes and windows holding it now, and the most bytes and windows that
// held it at once so far.
func (t *Transcriber) DecodeMemory() (limit, held int64, windows int, peakBytes int64, peakWindows int) {
	held, windows, peakBytes, peakWindows = t.slots.stats()
	return t.cfg.DecodeMemory, held, windows, peakBytes, peakWindows
}

// WindowBytes is the decode memory one window of a request with options o
// (after Defaulted) holds at most: the cross-attention keys and values of
// positions encoder positions, and a full-length self-attention cache for
// each sequence alive at once — the samples of a temperature above 0
// (BestOf) or the beams and their branches (2·BeamSize), plus one for
// language detection or word alignment.
func (t *Transcriber) WindowBytes(o Options, positions int) int64 {
	seqs := 1
	for _, temp := range o.Temperatures {
		if temp > 0 {
			seqs = max(seqs, o.BestOf)
		}
	}
	if o.BeamSize > 1 {
		seqs = max(seqs, 2*o.BeamSize)
	}
	seqs++
	return int64(t.dcfg.CrossBytes(positions)) + int64(seqs)*int64(t.dcfg.SequenceBytes(t.dcfg.MaxTargetPositions))
}

// BatchStats reports the decoder steps run, the sequence rows they advanced
// (rows/steps is the mean batch) and the largest step.
func (t *Transcriber) BatchStats() (steps, rows, largest int) { return t.sched.stats() }

// sotSequence is Whisper's prompt start: <|startoftranscript|>, then for
// multilingual models the language and the task, then <|notimestamps|>
// when decoding without timestamps.
func (t *Transcriber) sotSequence(lang string, task tokenizer.Task, timestamps bool) ([]int, error) {
	seq := []int{t.sp.SOT}
	if t.multi {
		id, err := t.tk.LanguageToken(lang)
		if err != nil {
			return nil, fmt.Errorf("transcribe: %w", err)
		}
		seq = append(seq, id, t.sp.Transcribe)
		if task == tokenizer.Translate {
			seq[len(seq)-1] = t.sp.Translate
		}
	}
	if !timestamps {
		seq = append(seq, t.sp.NoTimestamps)
	}
	return seq, nil
}

// encodeWindow runs the encoder on one window within the MaxEncodes bound.
func (t *Transcriber) encodeWindow(ctx context.Context, logMel []float32) ([]float32, int, error) {
	if t.encSem != nil {
		select {
		case t.encSem <- struct{}{}:
			defer func() { <-t.encSem }()
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
	return t.cfg.Encoder.EncodeWindow(ctx, logMel)
}
