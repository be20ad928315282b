package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// pythonPunctuation is Python's string.punctuation.
const pythonPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// unicodeSplitLanguages are the languages openai/whisper splits into words at
// every complete character instead of at spaces.
var unicodeSplitLanguages = map[string]bool{"zh": true, "ja": true, "th": true, "lo": true, "my": true, "yue": true}

// SplitWords groups ids into words as openai/whisper's split_to_word_tokens
// does for word-level timestamps: for zh, ja, th, lo, my and yue a word ends
// wherever the text decoded so far is whole UTF-8; otherwise those pieces are
// joined until a piece that starts with a space, is punctuation (Python's
// `piece.strip() in string.punctuation`, a substring test) or is a special
// token. A character the ids cut short for good is a U+FFFD in its word.
func (t *Tokenizer) SplitWords(ids []int, language string) (words []string, groups [][]int, err error) {
	subwords, subgroups, err := t.splitOnUnicode(ids)
	if err != nil || unicodeSplitLanguages[language] {
		return subwords, subgroups, err
	}
	for i, sub := range subwords {
		special := subgroups[i][0] >= t.sp.EOT
		withSpace := strings.HasPrefix(sub, " ")
		punctuation := strings.Contains(pythonPunctuation, pythonStrip(sub))
		if special || withSpace || punctuation || len(words) == 0 {
			words = append(words, sub)
			groups = append(groups, subgroups[i])
			continue
		}
		words[len(words)-1] += sub
		groups[len(groups)-1] = append(groups[len(groups)-1], subgroups[i]...)
	}
	return words, groups, nil
}

// splitOnUnicode is Whisper's split_tokens_on_unicode: a group ends when its
// decoded text has no U+FFFD, or its first U+FFFD is one the whole text has
// at that place too (a real replacement, not a character cut short).
func (t *Tokenizer) splitOnUnicode(ids []int) (words []string, groups [][]int, err error) {
	full, err := t.DecodeWithTimestamps(ids)
	if err != nil {
		return nil, nil, err
	}
	fullRunes := []rune(full)
	offset := 0 // in characters, as Python indexes str
	var cur []int
	for _, id := range ids {
		cur = append(cur, id)
		decoded, _ := t.DecodeWithTimestamps(cur)
		first := strings.IndexRune(decoded, utf8.RuneError)
		if first >= 0 {
			at := offset + utf8.RuneCountInString(decoded[:first])
			if at >= len(fullRunes) || fullRunes[at] != utf8.RuneError {
				continue
			}
		}
		words = append(words, decoded)
		groups = append(groups, cur)
		cur = nil
		offset += utf8.RuneCountInString(decoded)
	}
	return words, groups, nil
}

// pythonStrip trims what Python's str.strip() trims: Unicode White_Space and
// the separators U+001C–U+001F, which Python also counts as space.
func pythonStrip(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) })
}

// EncodePrompt encodes a text prompt (an initial prompt, or previous text) as
// Whisper does: one space, then the text stripped of surrounding space.
// An empty prompt gives no ids.
func (t *Tokenizer) EncodePrompt(text string) []int {
	text = pythonStrip(text)
	if text == "" {
		return nil
	}
	return t.Encode(" " + text)
}

// PromptPrefix returns what goes before the SOT sequence when decoding with a
// prompt: <|startofprev|> and the last nTextCtx/2-1 prompt ids (223 for
// Whisper's 448-token text context). No ids give no prefix.
func (t *Tokenizer) PromptPrefix(promptIDs []int, nTextCtx int) []int {
	if len(promptIDs) == 0 {
		return nil
	}
	keep := max(nTextCtx/2-1, 0)
	if len(promptIDs) > keep {
		promptIDs = promptIDs[len(promptIDs)-keep:]
	}
	return append([]int{t.sp.SOTPrev}, promptIDs...)
}
