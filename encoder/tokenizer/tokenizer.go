// Package tokenizer is Whisper's tokenizer: byte-level BPE over tiktoken rank
// files (GPT-2's vocabulary for the .en models, Whisper's multilingual one
// otherwise), GPT-2 pre-tokenisation, and Whisper's special tokens appended
// after the last rank (end of text, start of transcript, languages, tasks,
// no-speech, no-timestamps, previous text, 1,501 timestamps). It also reads
// Hugging Face tokenizer files, and decodes streams of ids into text that is
// always whole UTF-8.
//
// Both vocabularies ship inside the binary and are parsed on first use.
// Tokenizers are immutable and safe for concurrent use.
package tokenizer

import (
	"fmt"
	"sort"
)

// Task is what the decoder is asked to do.
type Task string

// The tasks Whisper knows.
const (
	Transcribe Task = "transcribe"
	Translate  Task = "translate"
)

// Timestamp tokens: <|0.00|> … <|30.00|>, one per TimestampStep seconds.
const (
	NumTimestamps = 1501
	TimestampStep = 0.02
)

// Specials are the ids of Whisper's special tokens in one vocabulary.
type Specials struct {
	EOT            int // <|endoftext|>
	SOT            int // <|startoftranscript|>
	Translate      int // <|translate|>
	Transcribe     int // <|transcribe|>
	SOTLM          int // <|startoflm|>
	SOTPrev        int // <|startofprev|>
	NoSpeech       int // <|nospeech|>
	NoTimestamps   int // <|notimestamps|>
	TimestampBegin int // <|0.00|>
}

// Tokenizer is one Whisper vocabulary with its special tokens.
type Tokenizer struct {
	v            *vocab
	name         string
	numLanguages int
	sp           Specials
	nVocab       int
	nonSpeech    []int
}

// newTokenizer appends Whisper's special tokens after v's last id.
func newTokenizer(v *vocab, name string, numLanguages int) (*Tokenizer, error) {
	if numLanguages < 1 || numLanguages > MaxLanguages {
		return nil, fmt.Errorf("%s: %d languages: want 1 to %d", name, numLanguages, MaxLanguages)
	}
	eot := v.size()
	sp := Specials{EOT: eot, SOT: eot + 1}
	sp.Translate = sp.SOT + 1 + numLanguages
	sp.Transcribe = sp.Translate + 1
	sp.SOTLM = sp.Transcribe + 1
	sp.SOTPrev = sp.SOTLM + 1
	sp.NoSpeech = sp.SOTPrev + 1
	sp.NoTimestamps = sp.NoSpeech + 1
	sp.TimestampBegin = sp.NoTimestamps + 1
	t := &Tokenizer{v: v, name: name, numLanguages: numLanguages, sp: sp, nVocab: sp.TimestampBegin + NumTimestamps}
	t.nonSpeech = t.computeNonSpeech()
	return t, nil
}

// Name says where the vocabulary came from ("multilingual", "gpt2", a file).
func (t *Tokenizer) Name() string { return t.name }

// Specials returns the special tokens' ids.
func (t *Tokenizer) Specials() Specials { return t.sp }

// VocabSize is the number of ids, special tokens included: the decoder's
// logit count (51,864 .en, 51,865 multilingual, 51,866 large-v3).
func (t *Tokenizer) VocabSize() int { return t.nVocab }

// Multilingual reports whether the vocabulary is a multilingual model's
// (Whisper's rule: at least 51,865 ids).
func (t *Tokenizer) Multilingual() bool { return t.nVocab >= 51865 }

// NumLanguages is the number of language tokens (99, or 100 for large-v3).
func (t *Tokenizer) NumLanguages() int { return t.numLanguages }

// Languages returns the language codes in token order.
func (t *Tokenizer) Languages() []string {
	return append([]string(nil), languageCodes[:t.numLanguages]...)
}

// LanguageToken returns the id of <|code|>; language may also be a name or
// an alias ("english", "mandarin").
func (t *Tokenizer) LanguageToken(language string) (int, error) {
	code, err := LanguageCode(language)
	if err != nil {
		return 0, err
	}
	i := languageIndex(code)
	if i >= t.numLanguages {
		return 0, fmt.Errorf("language %q is not in this vocabulary (%d languages; it needs %d)", code, t.numLanguages, i+1)
	}
	return t.sp.SOT + 1 + i, nil
}

// LanguageOf returns the code of a language token, or false when id is not one.
func (t *Tokenizer) LanguageOf(id int) (string, bool) {
	i := id - t.sp.SOT - 1
	if i < 0 || i >= t.numLanguages {
		return "", false
	}
	return languageCodes[i], true
}

// LanguageTokens returns the ids of every language token, in order.
func (t *Tokenizer) LanguageTokens() []int {
	ids := make([]int, t.numLanguages)
	for i := range ids {
		ids[i] = t.sp.SOT + 1 + i
	}
	return ids
}

// SOTSequence returns the prompt that starts a window, as Whisper builds it:
// <|startoftranscript|>, the language, the task, then <|notimestamps|> when
// timestamps is false. An empty language or task leaves that token out (the
// decoder detects the language from the logits after <|startoftranscript|>).
// English-only vocabularies have no language or task token: they accept ""
// or "en" and "" or Transcribe.
func (t *Tokenizer) SOTSequence(language string, task Task, timestamps bool) ([]int, error) {
	seq := []int{t.sp.SOT}
	if t.Multilingual() {
		if language != "" {
			id, err := t.LanguageToken(language)
			if err != nil {
				return nil, err
			}
			seq = append(seq, id)
		}
		switch task {
		case "":
		case Transcribe:
			seq = append(seq, t.sp.Transcribe)
		case Translate:
			seq = append(seq, t.sp.Translate)
		default:
			return nil, fmt.Errorf("unknown task %q (want %q or %q)", task, Transcribe, Translate)
		}
	} else {
		if code, err := LanguageCode(language); language != "" && (err != nil || code != "en") {
			return nil, fmt.Errorf("language %q: this English-only vocabulary (%s) transcribes English only", language, t.name)
		}
		if task != "" && task != Transcribe {
			return nil, fmt.Errorf("task %q: this English-only vocabulary (%s) can only transcribe", task, t.name)
		}
	}
	if !timestamps {
		seq = append(seq, t.sp.NoTimestamps)
	}
	return seq, nil
}

// IsSpecial reports whether id is a special token (end of text or above).
func (t *Tokenizer) IsSpecial(id int) bool { return id >= t.sp.EOT && id < t.nVocab }

// IsTimestamp reports whether id is a timestamp token.
func (t *Tokenizer) IsTimestamp(id int) bool { return id >= t.sp.TimestampBegin && id < t.nVocab }

// TimestampSeconds returns the time a timestamp token stands for.
func (t *Tokenizer) TimestampSeconds(id int) (float64, bool) {
	if !t.IsTimestamp(id) {
		return 0, false
	}
	return float64(id-t.sp.TimestampBegin) * TimestampStep, true
}

// TimestampToken returns the timestamp token nearest to seconds (0 to 30).
func (t *Tokenizer) TimestampToken(seconds float64) (int, error) {
	if !(seconds >= 0 && seconds <= (NumTimestamps-1)*TimestampStep+TimestampStep/2) {
		return 0, fmt.Errorf("timestamp %v s: want 0 to 30 s", seconds)
	}
	k := int(seconds/TimestampStep + 0.5)
	if k > NumTimestamps-1 {
		k = NumTimestamps - 1
	}
	return t.sp.TimestampBegin + k, nil
}

// TokenText returns how Whisper spells a token: its bytes for an ordinary
// token (possibly a fragment of a UTF-8 character), "<|…|>" for a special one.
func (t *Tokenizer) TokenText(id int) (string, error) {
	if id >= 0 && id < t.sp.EOT {
		return t.v.token(id), nil
	}
	if !t.IsSpecial(id) {
		return "", fmt.Errorf("token id %d: want 0 to %d", id, t.nVocab-1)
	}
	return t.specialText(id), nil
}

func (t *Tokenizer) specialText(id int) string {
	sp := t.sp
	switch {
	case id == sp.EOT:
		return "<|endoftext|>"
	case id == sp.SOT:
		return "<|startoftranscript|>"
	case id < sp.Translate:
		return "<|" + languageCodes[id-sp.SOT-1] + "|>"
	case id == sp.Translate:
		return "<|translate|>"
	case id == sp.Transcribe:
		return "<|transcribe|>"
	case id == sp.SOTLM:
		return "<|startoflm|>"
	case id == sp.SOTPrev:
		return "<|startofprev|>"
	case id == sp.NoSpeech:
		return "<|nospeech|>"
	case id == sp.NoTimestamps:
		return "<|notimestamps|>"
	}
	cs := 2 * (id - sp.TimestampBegin) // centiseconds
	return fmt.Sprintf("<|%d.%02d|>", cs/100, cs%100)
}

// Encode returns the ids of text. Text is ordinary text throughout: a
// special token's spelling ("<|endoftext|>") is encoded as its characters,
// like tiktoken's encode_ordinary. Bytes that are not valid UTF-8 are encoded
// as themselves, so Decode(Encode(s)) == s for every string.
func (t *Tokenizer) Encode(text string) []int {
	return t.AppendEncode(make([]int, 0, len(text)/4+1), text)
}

// AppendEncode appends the ids of text to dst.
func (t *Tokenizer) AppendEncode(dst []int, text string) []int {
	splitPieces(text, func(piece string) { dst = t.v.appendPiece(dst, piece) })
	return dst
}

// NonSpeechTokens returns Whisper's non_speech_tokens, sorted: the tokens that
// only spell speaker tags, music and other annotations ("[", "(", "♪", "--", …),
// which the "-1" suppress setting bans.
func (t *Tokenizer) NonSpeechTokens() []int { return append([]int(nil), t.nonSpeech...) }

// computeNonSpeech follows Whisper's rule: each symbol below, alone and after
// a space, is banned when it encodes to a single token; the musical symbols
// U+2640–U+267F are banned by their first token either way; so are " -" and
// " '" (a hyphen or apostrophe may join words but not start one).
func (t *Tokenizer) computeNonSpeech() []int {
	var symbols []string
	for _, r := range "\"#()*+/:;<=>@[\\]^_`{|}~「」『』" {
		symbols = append(symbols, string(r))
	}
	symbols = append(symbols, "<<", ">>", "<<<", ">>>", "--", "---", "-(", "-[", "('", "(\"",
		"((", "))", "(((", ")))", "[[", "]]", "{{", "}}", "♪♪", "♪♪♪")
	miscellaneous := []string{"♩", "♪", "♫", "♬", "♭", "♮", "♯"}
	set := map[int]bool{t.Encode(" -")[0]: true, t.Encode(" '")[0]: true}
	for _, s := range symbols {
		for _, ids := range [][]int{t.Encode(s), t.Encode(" " + s)} {
			if len(ids) == 1 {
				set[ids[0]] = true
			}
		}
	}
	for _, s := range miscellaneous {
		set[t.Encode(s)[0]] = true
		set[t.Encode(" " + s)[0]] = true
	}
	return sortedIDs(set)
}

// SuppressTokens returns what Whisper's decoding bans at every step with its
// default suppress_tokens "-1": the non-speech tokens, <|transcribe|>,
// <|translate|>, <|startoftranscript|>, <|startofprev|>, <|startoflm|> and
// <|nospeech|> (its probability is read separately), sorted.
func (t *Tokenizer) SuppressTokens() []int {
	set := map[int]bool{}
	for _, id := range t.nonSpeech {
		set[id] = true
	}
	for _, id := range []int{t.sp.Transcribe, t.sp.Translate, t.sp.SOT, t.sp.SOTPrev, t.sp.SOTLM, t.sp.NoSpeech} {
		set[id] = true
	}
	return sortedIDs(set)
}

// BlankSuppressTokens returns what Whisper's SuppressBlank bans at the first
// sampled step: the ids of " " and <|endoftext|>.
func (t *Tokenizer) BlankSuppressTokens() []int {
	return append(t.Encode(" "), t.sp.EOT)
}

func sortedIDs(set map[int]bool) []int {
	ids := make([]int, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}
