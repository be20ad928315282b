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
	dcfg   decoder.Config
	sched  *scheduler
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
	case cfg.MaxBatch < 0:
		return nil, fmt.Errorf("transcribe: Config.MaxBatch: expected ≥ 0, found %d", cfg.MaxBatch)
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
	t := &Transcriber{
		cfg: cfg, tk: cfg.Tokenizer, sp: cfg.Tokenizer.Specials(), dcfg: dcfg, multi: cfg.Generation.IsMultilingual,
		sched: newScheduler(cfg.Decoder, cfg.MaxBatch),
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

// BatchStats reports the decoder steps run, the sequence rows they advanced
// (rows/steps is the mean batch) and the largest step.
func (t *Transcriber) BatchStats() (steps, rows, largest int) { return t.sched.stats() }

// check validates defaulted options.
func (t *Transcriber) check(o Options) error {
	switch {
	case o.BeamSize > t.cfg.MaxBatch:
		return fmt.Errorf("transcribe: beam size: expected at most %d (the decoder batch), found %d", t.cfg.MaxBatch, o.BeamSize)
	case o.WordTimestamps && len(t.cfg.Generation.AlignmentHeads) == 0:
		return errors.New("transcribe: word timestamps: the model's generation config has no alignment_heads")
	case o.BeamSize < 0:
		return fmt.Errorf("transcribe: beam size: expected ≥ 0, found %d", o.BeamSize)
	case o.BestOf < 1:
		return fmt.Errorf("transcribe: best_of: expected ≥ 1, found %d", o.BestOf)
	case o.MaxTokens < 1 || o.MaxTokens > t.dcfg.MaxTargetPositions:
		return fmt.Errorf("transcribe: max tokens: expected 1…%d, found %d", t.dcfg.MaxTargetPositions, o.MaxTokens)
	case o.Task != tokenizer.Transcribe && o.Task != tokenizer.Translate:
		return fmt.Errorf("transcribe: task: expected %q or %q, found %q", tokenizer.Transcribe, tokenizer.Translate, o.Task)
	case o.Task == tokenizer.Translate && !t.multi:
		return errors.New("transcribe: task translate: this model is English-only (it can only transcribe)")
	}
	for i, temp := range o.Temperatures {
		if !(temp >= 0 && temp <= 100) {
			return fmt.Errorf("transcribe: temperatures[%d]: expected 0…100, found %v", i, temp)
		}
	}
	if o.Language != "" {
		if _, err := t.languageCode(o.Language); err != nil {
			return err
		}
	}
	return nil
}

// languageCode normalises a requested language for this model.
func (t *Transcriber) languageCode(lang string) (string, error) {
	code, err := tokenizer.LanguageCode(lang)
	if err != nil {
		return "", fmt.Errorf("transcribe: language: %w", err)
	}
	if !t.multi {
		if code != "en" {
			return "", fmt.Errorf("transcribe: language %q: this model is English-only", lang)
		}
		return code, nil
	}
	if _, err := t.tk.LanguageToken(code); err != nil {
		return "", fmt.Errorf("transcribe: language %q: %w", lang, err)
	}
	return code, nil
}

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
