package tokenizer

import (
	"bufio"
	_ "embed"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
)

// The two vocabularies Whisper ships (openai/whisper, MIT; see
// tiktoken.LICENSE): GPT-2's for the .en models, Whisper's multilingual one
// for the others.
var (
	//go:embed gpt2.tiktoken
	gpt2Tiktoken string
	//go:embed multilingual.tiktoken
	multilingualTiktoken string
)

// The built-in vocabulary names.
const (
	GPT2         = "gpt2"
	Multilingual = "multilingual"
)

// lazyVocab parses an embedded rank file once, on first use.
type lazyVocab struct {
	once sync.Once
	src  *string
	name string
	v    *vocab
	err  error
}

func (l *lazyVocab) get() (*vocab, error) {
	l.once.Do(func() { l.v, l.err = parseTiktoken(strings.NewReader(*l.src), l.name+".tiktoken") })
	return l.v, l.err
}

var builtinVocabs = map[string]*lazyVocab{
	GPT2:         {src: &gpt2Tiktoken, name: GPT2},
	Multilingual: {src: &multilingualTiktoken, name: Multilingual},
}

// builtinKey names one built-in tokenizer: vocabulary and language count.
type builtinKey struct {
	name         string
	numLanguages int
}

var (
	builtinMu    sync.Mutex
	builtinCache = map[builtinKey]*Tokenizer{}
)

// Builtin returns the tokenizer of a built-in vocabulary (GPT2 or
// Multilingual) with numLanguages language tokens (DefaultLanguages, or
// MaxLanguages for large-v3). The result is shared: one per combination.
func Builtin(name string, numLanguages int) (*Tokenizer, error) {
	lv, ok := builtinVocabs[name]
	if !ok {
		return nil, fmt.Errorf("unknown vocabulary %q (want %q or %q)", name, GPT2, Multilingual)
	}
	v, err := lv.get()
	if err != nil {
		return nil, err
	}
	key := builtinKey{name, numLanguages}
	builtinMu.Lock()
	defer builtinMu.Unlock()
	if t, ok := builtinCache[key]; ok {
		return t, nil
	}
	t, err := newTokenizer(v, name, numLanguages)
	if err != nil {
		return nil, err
	}
	builtinCache[key] = t
	return t, nil
}

// ForVocabSize returns the built-in tokenizer of a Whisper model with
// nVocab logits: 51,864 (.en models), 51,865 (multilingual, 99 languages)
// or 51,866 (large-v3 and turbo, 100 languages).
func ForVocabSize(nVocab int) (*Tokenizer, error) {
	switch nVocab {
	case 51864:
		return Builtin(GPT2, DefaultLanguages)
	case 51865:
		return Builtin(Multilingual, DefaultLanguages)
	case 51866:
		return Builtin(Multilingual, MaxLanguages)
	}
	return nil, fmt.Errorf("vocabulary size %d is no Whisper model's (want 51864 .en, 51865 multilingual, 51866 large-v3)", nVocab)
}

// ParseTiktoken reads a tiktoken rank file (`<base64 bytes> <rank>` per
// line) and appends Whisper's special tokens with numLanguages languages;
// name labels errors and Name().
func ParseTiktoken(data string, name string, numLanguages int) (*Tokenizer, error) {
	v, err := parseTiktoken(strings.NewReader(data), name)
	if err != nil {
		return nil, err
	}
	return newTokenizer(v, name, numLanguages)
}

// WriteTiktoken writes the ordinary tokens as a tiktoken rank file (what
// ParseTiktoken reads back with NumLanguages()), e.g. for a staged model
// directory; for the built-in vocabularies it is Whisper's file byte for byte.
func (t *Tokenizer) WriteTiktoken(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for id := 0; id < t.v.size(); id++ {
		tok := t.v.token(id)
		if tok == "" {
			bw.WriteString("=") // Python's b64decode reads it as the empty token
		} else {
			bw.WriteString(base64.StdEncoding.EncodeToString([]byte(tok)))
		}
		bw.WriteByte(' ')
		bw.WriteString(strconv.Itoa(id))
		bw.WriteByte('\n')
	}
	return bw.Flush()
}
