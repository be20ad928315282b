// Package tokenizertest writes tokenizer files for other packages' tests.
package tokenizertest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
)

// ByteLevelJSON is a Hugging Face tokenizer.json of a byte-level vocabulary
// (the 256 bytes in order, no merges) followed by Whisper's special tokens
// for numLanguages languages: 1,864 tokens for 99 languages, the vocabulary
// of the committed testdata/models/hf-micro model, which has no tokenizer
// files of its own.
func ByteLevelJSON(numLanguages int) ([]byte, error) {
	var ranks strings.Builder
	for b := range 256 {
		fmt.Fprintf(&ranks, "%s %d\n", base64.StdEncoding.EncodeToString([]byte{byte(b)}), b)
	}
	tok, err := tokenizer.ParseTiktoken(ranks.String(), "bytes", numLanguages)
	if err != nil {
		return nil, err
	}
	vocab := map[string]int{}
	for b, r := range gpt2ByteRunes() {
		vocab[string(r)] = b
	}
	var added []map[string]any
	for id := 256; id < tok.VocabSize(); id++ {
		text, err := tok.TokenText(id)
		if err != nil {
			return nil, err
		}
		added = append(added, map[string]any{"id": id, "content": text, "special": true})
	}
	return json.Marshal(map[string]any{
		"version": "1.0", "added_tokens": added, "normalizer": nil, "post_processor": nil,
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"decoder":       map[string]any{"type": "ByteLevel"},
		"model":         map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "vocab": vocab, "merges": []string{}},
	})
}

// gpt2ByteRunes is GPT-2's printable stand-in for each byte (Hugging Face's
// byte-level alphabet): the byte itself for printable Latin-1, else 256,
// 257, … in byte order.
func gpt2ByteRunes() [256]rune {
	var out [256]rune
	n := 0
	for b := range 256 {
		if (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff) {
			out[b] = rune(b)
		} else {
			out[b] = rune(256 + n)
			n++
		}
	}
	return out
}
