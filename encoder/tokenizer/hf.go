package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"unicode/utf8"
)

// Hugging Face's Whisper tokenizer files hold the same vocabulary as
// Whisper's rank files, spelled differently: each token's bytes are written
// in GPT-2's byte-to-unicode alphabet (a printable character per byte), the
// merges are listed in rank order, and the special tokens are "added tokens".
// The readers below turn them back into ranks and check that they describe
// a Whisper vocabulary — ids of the ordinary tokens 0…n-1, merge i making a
// token of higher id than merge i-1 (so "lowest merge first" and "lowest
// rank first" pick the same pair), the special tokens in Whisper's order
// right after — and then encode with the same rank merging as the tiktoken
// path. Anything else is an error that names the file and what it found.

// HF file names.
const (
	HFTokenizerJSON  = "tokenizer.json"
	HFVocabJSON      = "vocab.json"
	HFMergesTXT      = "merges.txt"
	HFAddedTokenJSON = "added_tokens.json"
)

// HasHFTokenizer reports whether fsys holds Hugging Face tokenizer files
// (tokenizer.json, or vocab.json and merges.txt).
func HasHFTokenizer(fsys fs.FS) bool {
	if _, err := fs.Stat(fsys, HFTokenizerJSON); err == nil {
		return true
	}
	_, errV := fs.Stat(fsys, HFVocabJSON)
	_, errM := fs.Stat(fsys, HFMergesTXT)
	return errV == nil && errM == nil
}

// LoadHF reads the tokenizer of a Hugging Face model directory: tokenizer.json
// when present, else vocab.json + merges.txt + added_tokens.json.
func LoadHF(fsys fs.FS) (*Tokenizer, error) {
	if data, err := fs.ReadFile(fsys, HFTokenizerJSON); err == nil {
		return ParseHFTokenizerJSON(data)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", HFTokenizerJSON, err)
	}
	var files [3][]byte
	for i, name := range []string{HFVocabJSON, HFMergesTXT, HFAddedTokenJSON} {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("no %s, so want %s + %s + %s: %w", HFTokenizerJSON, HFVocabJSON, HFMergesTXT, HFAddedTokenJSON, err)
		}
		files[i] = data
	}
	return ParseHFVocabMerges(files[0], files[1], files[2])
}

// hfTokenizerFile is the part of tokenizer.json that decides the encoding.
type hfTokenizerFile struct {
	AddedTokens  []hfAddedToken  `json:"added_tokens"`
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	Model        struct {
		Type                    string            `json:"type"`
		Vocab                   map[string]int    `json:"vocab"`
		Merges                  []json.RawMessage `json:"merges"`
		ByteFallback            bool              `json:"byte_fallback"`
		ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
		Dropout                 *float64          `json:"dropout"`
	} `json:"model"`
}

type hfAddedToken struct {
	ID      int    `json:"id"`
	Content string `json:"content"`
}

type hfPreTokenizer struct {
	Type           string           `json:"type"`
	AddPrefixSpace bool             `json:"add_prefix_space"`
	UseRegex       *bool            `json:"use_regex"`
	Pattern        *json.RawMessage `json:"pattern"`
	PreTokenizers  []hfPreTokenizer `json:"pretokenizers"`
}

// gpt2Pattern is the pre-tokenisation regex nextPiece implements.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// ParseHFTokenizerJSON reads a Hugging Face tokenizer.json.
func ParseHFTokenizerJSON(data []byte) (*Tokenizer, error) {
	const file = HFTokenizerJSON
	var f hfTokenizerFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	m := f.Model
	if m.Type != "BPE" {
		return nil, fmt.Errorf("%s: model type %q, want \"BPE\" (Whisper's byte-level BPE)", file, m.Type)
	}
	if m.ByteFallback || nonEmpty(m.ContinuingSubwordPrefix) || nonEmpty(m.EndOfWordSuffix) || (m.Dropout != nil && *m.Dropout != 0) {
		return nil, fmt.Errorf("%s: BPE options byte_fallback/continuing_subword_prefix/end_of_word_suffix/dropout set; Whisper's BPE uses none", file)
	}
	if n := bytes.TrimSpace(f.Normalizer); len(n) > 0 && string(n) != "null" {
		return nil, fmt.Errorf("%s: normalizer %s; Whisper's tokenizer has none", file, clip(n))
	}
	if err := checkPreTokenizer(f.PreTokenizer); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	merges := make([][2]string, len(m.Merges))
	for i, raw := range m.Merges {
		pair, err := parseHFMerge(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: model.merges[%d]: %w", file, i, err)
		}
		merges[i] = pair
	}
	return fromHF(file, m.Vocab, merges, f.AddedTokens)
}

func nonEmpty(s *string) bool { return s != nil && *s != "" }

// clip shortens raw JSON for an error message.
func clip(raw []byte) string {
	if len(raw) > 120 {
		return string(raw[:120]) + "…"
	}
	return string(raw)
}

// parseHFMerge reads one merge: "left right" (the classic format) or
// ["left", "right"] (tokenizers ≥ 0.20).
func parseHFMerge(raw json.RawMessage) ([2]string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		l, r, ok := strings.Cut(s, " ")
		if !ok || l == "" || r == "" || strings.Contains(r, " ") {
			return [2]string{}, fmt.Errorf("%q is not `left right`", s)
		}
		return [2]string{l, r}, nil
	}
	var pair []string
	if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 || pair[0] == "" || pair[1] == "" {
		return [2]string{}, fmt.Errorf("%s is neither \"left right\" nor [\"left\", \"right\"]", clip(raw))
	}
	return [2]string{pair[0], pair[1]}, nil
}

// checkPreTokenizer accepts GPT-2's: ByteLevel splitting with its own regex
// and no prefix space, or a Sequence of a Split on the same regex and a
// ByteLevel without regex.
func checkPreTokenizer(raw json.RawMessage) error {
	var p hfPreTokenizer
	if err := json.Unmarshal(raw, &p); err != nil {
		return fmt.Errorf("pre_tokenizer: %w", err)
	}
	want := fmt.Errorf("pre_tokenizer %s: want ByteLevel (add_prefix_space false) with GPT-2's split pattern", clip(raw))
	switch p.Type {
	case "ByteLevel":
		if p.AddPrefixSpace || (p.UseRegex != nil && !*p.UseRegex) {
			return want
		}
		return nil
	case "Sequence":
		if len(p.PreTokenizers) != 2 {
			return want
		}
		split, bl := p.PreTokenizers[0], p.PreTokenizers[1]
		if split.Type != "Split" || split.Pattern == nil || bl.Type != "ByteLevel" || bl.AddPrefixSpace || bl.UseRegex == nil || *bl.UseRegex {
			return want
		}
		var pat struct{ Regex, String *string }
		if json.Unmarshal(*split.Pattern, &pat) != nil || pat.Regex == nil || *pat.Regex != gpt2Pattern {
			return want
		}
		return nil
	}
	return want
}

// ParseHFVocabMerges reads the slow-tokenizer files: vocab.json (token →
// id), merges.txt ("#version" line, then "left right" per line) and
// added_tokens.json (special token → id).
func ParseHFVocabMerges(vocabJSON, mergesTXT, addedTokensJSON []byte) (*Tokenizer, error) {
	var vocab map[string]int
	if err := json.Unmarshal(vocabJSON, &vocab); err != nil {
		return nil, fmt.Errorf("%s: %w", HFVocabJSON, err)
	}
	var merges [][2]string
	for i, line := range strings.Split(string(mergesTXT), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if line == "" || (i == 0 && strings.HasPrefix(line, "#version")) {
			continue
		}
		l, r, ok := strings.Cut(line, " ")
		if !ok || l == "" || r == "" || strings.Contains(r, " ") {
			return nil, fmt.Errorf("%s:%d: %q is not `left right`", HFMergesTXT, i+1, line)
		}
		merges = append(merges, [2]string{l, r})
	}
	var addedMap map[string]int
	if err := json.Unmarshal(addedTokensJSON, &addedMap); err != nil {
		return nil, fmt.Errorf("%s: %w", HFAddedTokenJSON, err)
	}
	added := make([]hfAddedToken, 0, len(addedMap))
	for content, id := range addedMap {
		added = append(added, hfAddedToken{ID: id, Content: content})
	}
	return fromHF(HFVocabJSON+" + "+HFMergesTXT+" + "+HFAddedTokenJSON, vocab, merges, added)
}

// unicodeToByte inverts GPT-2's byte-to-unicode map: bytes that print as
// themselves (! … ~, ¡ … ¬, ® … ÿ) keep their code point, the other 68 take
// U+0100, U+0101, … in byte order.
var unicodeToByte = func() map[rune]byte {
	m := make(map[rune]byte, 256)
	next := rune(256)
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			m[rune(b)] = byte(b)
		} else {
			m[next] = byte(b)
			next++
		}
	}
	return m
}()

// hfBytes turns a token spelled in the byte-to-unicode alphabet into its bytes.
func hfBytes(token string) ([]byte, error) {
	out := make([]byte, 0, len(token))
	for _, r := range token {
		b, ok := unicodeToByte[r]
		if !ok || r == utf8.RuneError {
			return nil, fmt.Errorf("character %U is outside GPT-2's byte-to-unicode alphabet", r)
		}
		out = append(out, b)
	}
	return out, nil
}

// fromHF checks a Hugging Face vocabulary against Whisper's layout and
// builds the tokenizer.
func fromHF(file string, vocab map[string]int, merges [][2]string, added []hfAddedToken) (*Tokenizer, error) {
	if len(vocab) == 0 {
		return nil, fmt.Errorf("%s: empty vocabulary", file)
	}
	special := make(map[string]int, len(added))
	for _, a := range added {
		special[a.Content] = a.ID
	}
	// The ordinary tokens: every vocabulary entry that is not an added token.
	byID := map[int][]byte{}
	for tok, id := range vocab {
		if sid, ok := special[tok]; ok {
			if sid != id {
				return nil, fmt.Errorf("%s: %q has id %d in the vocabulary but %d as an added token", file, tok, id, sid)
			}
			continue
		}
		b, err := hfBytes(tok)
		if err != nil {
			return nil, fmt.Errorf("%s: token %q (id %d): %w", file, tok, id, err)
		}
		if prev, dup := byID[id]; dup {
			return nil, fmt.Errorf("%s: id %d is both %q and %q", file, id, prev, b)
		}
		byID[id] = b
	}
	v, err := hfVocab(file, byID, special["<|endoftext|>"])
	if err != nil {
		return nil, err
	}
	if err := checkMerges(file, v, merges); err != nil {
		return nil, err
	}
	numLanguages, err := checkSpecials(file, v.size(), added)
	if err != nil {
		return nil, err
	}
	return newTokenizer(v, file, numLanguages)
}

// checkMerges requires one merge per multi-byte token, each joining two
// tokens into a third, in increasing order of the id made: then merging the
// lowest-listed pair first is merging the lowest-ranked pair first.
func checkMerges(file string, v *vocab, merges [][2]string) error {
	multi := 0
	for id := 0; id < v.size(); id++ {
		if len(v.token(id)) >= 2 {
			multi++
		}
	}
	if len(merges) != multi {
		return fmt.Errorf("%s: %d merges for %d multi-byte tokens; a Whisper vocabulary has one merge per token", file, len(merges), multi)
	}
	last := int32(-1)
	for i, m := range merges {
		l, errL := hfBytes(m[0])
		r, errR := hfBytes(m[1])
		if err := errors.Join(errL, errR); err != nil {
			return fmt.Errorf("%s: merge %d %q: %w", file, i+1, m, err)
		}
		_, okL := v.ranks[string(l)]
		_, okR := v.ranks[string(r)]
		made, okM := v.ranks[string(l)+string(r)]
		if !okL || !okR || !okM {
			return fmt.Errorf("%s: merge %d %q joins tokens that are not in the vocabulary", file, i+1, m)
		}
		if made <= last {
			return fmt.Errorf("%s: merge %d %q makes id %d after merge %d made id %d; merges must follow the ids (ranks)", file, i+1, m, made, i, last)
		}
		last = made
	}
	return nil
}

// checkSpecials requires Whisper's special tokens right after the ordinary
// ones, in order, and returns the number of languages. The 1,501 timestamps
// may be absent (older Hugging Face files leave them out; their ids follow
// <|notimestamps|> anyway).
func checkSpecials(file string, eot int, added []hfAddedToken) (int, error) {
	sorted := append([]hfAddedToken(nil), added...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	numLanguages := 0
	for _, a := range sorted {
		if strings.HasPrefix(a.Content, "<|") && languageIndex(strings.Trim(a.Content, "<|>")) >= 0 {
			numLanguages++
		}
	}
	if numLanguages == 0 || numLanguages > MaxLanguages {
		return 0, fmt.Errorf("%s: %d language tokens among the added tokens; want Whisper's (99, or 100 for large-v3)", file, numLanguages)
	}
	// Spell the expected layout with a throwaway tokenizer's specialText.
	layout := &Tokenizer{numLanguages: numLanguages}
	layout.sp = Specials{EOT: eot, SOT: eot + 1, Translate: eot + 2 + numLanguages}
	layout.sp.Transcribe = layout.sp.Translate + 1
	layout.sp.SOTLM = layout.sp.Transcribe + 1
	layout.sp.SOTPrev = layout.sp.SOTLM + 1
	layout.sp.NoSpeech = layout.sp.SOTPrev + 1
	layout.sp.NoTimestamps = layout.sp.NoSpeech + 1
	layout.sp.TimestampBegin = layout.sp.NoTimestamps + 1
	n := layout.sp.TimestampBegin - eot
	if len(sorted) != n && len(sorted) != n+NumTimestamps {
		return 0, fmt.Errorf("%s: %d added tokens; Whisper's layout with %d languages has %d (or %d without timestamps)", file, len(sorted), numLanguages, n+NumTimestamps, n)
	}
	for k, a := range sorted {
		id := eot + k
		if want := layout.specialText(id); a.ID != id || a.Content != want {
			return 0, fmt.Errorf("%s: added token %q has id %d; Whisper's layout puts %q at id %d", file, a.Content, a.ID, want, id)
		}
	}
	return numLanguages, nil
}

// hfVocab indexes the ordinary tokens (ids 0…n-1; n is the id of
// <|endoftext|> when there is one). A vocabulary the size of
// one of Whisper's must be that vocabulary token for token — an id it lacks
// may only be one where Whisper's token is empty (multilingual's 50,256) —
// and then shares the built-in tables instead of a second copy.
func hfVocab(file string, byID map[int][]byte, eot int) (*vocab, error) {
	n := 0
	for id, b := range byID {
		if id < 0 || (eot > 0 && id >= eot) {
			return nil, fmt.Errorf("%s: token %q has id %d; ordinary tokens come before <|endoftext|> (%d)", file, b, id, eot)
		}
		n = max(n, id+1)
	}
	if eot > 0 {
		n = eot
	}
	for _, name := range []string{GPT2, Multilingual} {
		bv, err := builtinVocabs[name].get()
		if err != nil || bv.size() != n {
			continue
		}
		for id := 0; id < n; id++ {
			b, ok := byID[id]
			if want := bv.token(id); !ok && want != "" {
				return nil, fmt.Errorf("%s: id %d is missing; Whisper's %s vocabulary has %q there", file, id, name, want)
			} else if ok && string(b) != want {
				return nil, fmt.Errorf("%s: token %d is %q where Whisper's %s vocabulary has %q", file, id, b, name, want)
			}
		}
		return bv, nil
	}
	if len(byID) != n {
		return nil, fmt.Errorf("%s: %d ordinary tokens for the %d ids before <|endoftext|>; every id from 0 to %d needs one", file, len(byID), n, n-1)
	}
	tokens := make([][]byte, n)
	for id, b := range byID {
		tokens[id] = b
	}
	return buildVocab(tokens, file)
}
