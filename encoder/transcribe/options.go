package transcribe

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
)

// ErrInvalidOption is wrapped by every error about a request's Options that
// the Transcriber cannot honour (errors.Is): the request is at fault, not
// the server, so the server answers 400 / INVALID_ARGUMENT. errors.As with
// *OptionError tells which option.
var ErrInvalidOption = errors.New("invalid transcription option")

// OptionError is one option of a request the Transcriber refuses: what it
// is (named as the transcription API names it), what it takes and what it
// got.
type OptionError struct {
	// Option is the API's name of the option: language, task, temperature,
	// timestamp_granularities, beam_size, best_of or max_tokens.
	Option   string
	Expected string
	Found    string
}

// Error is "transcribe: option <name>: expected <what>, found <what>".
func (e *OptionError) Error() string {
	return fmt.Sprintf("transcribe: option %s: expected %s, found %s", e.Option, e.Expected, e.Found)
}

// Unwrap makes errors.Is(err, ErrInvalidOption) hold.
func (e *OptionError) Unwrap() error { return ErrInvalidOption }

func optionError(option, expected string, found any) *OptionError {
	f := fmt.Sprint(found)
	if s, ok := found.(string); ok {
		f = strconv.Quote(s)
	}
	return &OptionError{Option: option, Expected: expected, Found: f}
}

// CheckOptions reports whether t can honour o (after Defaulted): nil, or an
// *OptionError wrapping ErrInvalidOption. Transcribe checks the same; a
// server calls this first to refuse a request before decoding its audio.
func (t *Transcriber) CheckOptions(o Options) error { return t.check(t.defaulted(o)) }

// defaulted fills o's unset fields with this model's defaults: MaxTokens is
// Whisper's sample_len, half the model's text context (224 of 448), the rest
// Options.Defaulted's.
func (t *Transcriber) defaulted(o Options) Options {
	if o.MaxTokens == 0 {
		o.MaxTokens = t.dcfg.MaxTargetPositions / 2
	}
	return o.Defaulted()
}

// check validates defaulted options.
func (t *Transcriber) check(o Options) error {
	switch {
	case o.BeamSize < 0 || o.BeamSize > t.cfg.MaxBatch:
		return optionError("beam_size", fmt.Sprintf("0 to %d (the decoder batch; 0 and 1 are greedy)", t.cfg.MaxBatch), o.BeamSize)
	case o.WordTimestamps && len(t.cfg.Generation.AlignmentHeads) == 0:
		return optionError("timestamp_granularities", "segment (word timestamps need alignment_heads in the model's generation config, which has none)", "word")
	case o.BestOf < 1:
		return optionError("best_of", "at least 1", o.BestOf)
	case o.MaxTokens < 1 || o.MaxTokens > t.dcfg.MaxTargetPositions:
		return optionError("max_tokens", fmt.Sprintf("1 to %d", t.dcfg.MaxTargetPositions), o.MaxTokens)
	case o.Task != tokenizer.Transcribe && o.Task != tokenizer.Translate:
		return optionError("task", fmt.Sprintf("%q or %q", tokenizer.Transcribe, tokenizer.Translate), string(o.Task))
	case o.Task == tokenizer.Translate && !t.multi:
		return optionError("task", fmt.Sprintf("%q (this model is English-only)", tokenizer.Transcribe), string(o.Task))
	}
	for i, temp := range o.Temperatures {
		if !(temp >= 0 && temp <= 100) {
			return &OptionError{Option: "temperature", Expected: "0 to 100", Found: fmt.Sprintf("%v (fallback step %d)", temp, i)}
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
		return "", optionError("language", "an ISO 639-1 code or a language name Whisper knows ("+err.Error()+")", lang)
	}
	if !t.multi {
		if code != "en" {
			return "", optionError("language", `"en" (this model is English-only)`, lang)
		}
		return code, nil
	}
	if _, err := t.tk.LanguageToken(code); err != nil {
		return "", optionError("language", "a language of this model's tokenizer ("+err.Error()+")", lang)
	}
	return code, nil
}
