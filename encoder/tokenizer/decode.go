package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Decoding joins the tokens' bytes and turns them into text the way Python's
// bytes.decode("utf-8", errors="replace") does (openai/whisper decodes so via
// tiktoken; Hugging Face's ByteLevel decoder uses Rust's from_utf8_lossy and
// transformers.js a TextDecoder, which follow the same rule): each maximal
// ill-formed subsequence — the longest prefix of a well-formed UTF-8 sequence,
// or else one byte — becomes one U+FFFD.

// Decode returns the text of ids as openai/whisper's Tokenizer.decode does:
// timestamp tokens are dropped, other special tokens are spelled "<|…|>".
func (t *Tokenizer) Decode(ids []int) (string, error) {
	return t.decode(ids, t.sp.TimestampBegin)
}

// DecodeWithTimestamps is Decode with timestamps spelled too ("<|1.08|>").
func (t *Tokenizer) DecodeWithTimestamps(ids []int) (string, error) {
	return t.decode(ids, t.nVocab)
}

// DecodeText returns the text of the ordinary tokens only (every special
// token dropped, as Hugging Face's skip_special_tokens does).
func (t *Tokenizer) DecodeText(ids []int) (string, error) {
	return t.decode(ids, t.sp.EOT)
}

// decode joins the bytes of the ids below keepBelow (spelling the special
// ones) and replaces what is not UTF-8.
func (t *Tokenizer) decode(ids []int, keepBelow int) (string, error) {
	n := 0
	for _, id := range ids {
		switch {
		case id < 0 || id >= t.nVocab:
			return "", fmt.Errorf("token id %d: want 0 to %d", id, t.nVocab-1)
		case id < t.sp.EOT:
			n += int(t.v.offs[id+1] - t.v.offs[id])
		case id < keepBelow:
			n += len(t.specialText(id))
		}
	}
	var b strings.Builder
	b.Grow(n)
	for _, id := range ids {
		if id < t.sp.EOT {
			b.WriteString(t.v.token(id))
		} else if id < keepBelow {
			b.WriteString(t.specialText(id))
		}
	}
	return ValidUTF8(b.String()), nil
}

// ValidUTF8 returns s with every maximal ill-formed subsequence replaced by
// U+FFFD (Python's errors="replace"; the WHATWG decoder's rule).
func ValidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		n, status := utf8Prefix(s[i:])
		if status == seqValid {
			b.WriteString(s[i : i+n])
		} else {
			b.WriteRune(utf8.RuneError)
		}
		i += n
	}
	return b.String()
}

// Status of the UTF-8 sequence at the start of a string.
const (
	seqValid   = iota // a whole well-formed character
	seqInvalid        // a maximal ill-formed subsequence no later byte can fix
	seqShort          // a well-formed sequence cut short by the end of the string
)

// utf8Prefix looks at the sequence starting at s[0] and returns its status
// and length: the character's, or its maximal ill-formed subsequence's (at
// least one byte).
func utf8Prefix(s string) (n, status int) {
	c := s[0]
	if c < utf8.RuneSelf {
		return 1, seqValid
	}
	var need int
	lo, hi := byte(0x80), byte(0xBF) // range of the second byte
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c == 0xED:
		need, hi = 2, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		need = 2
	case c == 0xF0:
		need, lo = 3, 0x90
	case c == 0xF4:
		need, hi = 3, 0x8F
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	default:
		return 1, seqInvalid // C0, C1, F5–FF, or a stray continuation byte
	}
	for k := 1; k <= need; k++ {
		if k >= len(s) {
			return k, seqShort
		}
		if b := s[k]; b < lo || b > hi {
			return k, seqInvalid
		}
		lo, hi = 0x80, 0xBF
	}
	return need + 1, seqValid
}

// incompleteTail returns how many bytes at the end of s are a well-formed
// UTF-8 sequence cut short (0 to 3): bytes that more input may complete.
func incompleteTail(s string) int {
	for back := 1; back <= 3 && back <= len(s); back++ {
		i := len(s) - back
		if s[i] < 0x80 {
			return 0
		}
		if s[i] >= 0xC0 { // a lead byte: is the rest of s its valid beginning?
			if _, status := utf8Prefix(s[i:]); status == seqShort {
				return back
			}
			return 0
		}
	}
	return 0
}

// StreamDecoder turns ids, given one at a time, into text deltas that are
// always whole UTF-8: bytes of a character split across tokens are held back
// until it completes; bytes that no continuation can make valid are replaced
// at once. The deltas of Push followed by Flush equal DecodeText of all ids.
// Special tokens (timestamps included) add no text. Not safe for concurrent use.
type StreamDecoder struct {
	t       *Tokenizer
	pending []byte
}

// NewStreamDecoder returns a StreamDecoder for t.
func (t *Tokenizer) NewStreamDecoder() *StreamDecoder { return &StreamDecoder{t: t} }

// Push adds one id and returns the text it completes (often "").
func (d *StreamDecoder) Push(id int) (string, error) {
	t := d.t
	if id < 0 || id >= t.nVocab {
		return "", fmt.Errorf("token id %d: want 0 to %d", id, t.nVocab-1)
	}
	if id >= t.sp.EOT {
		return "", nil
	}
	d.pending = append(d.pending, t.v.token(id)...)
	hold := incompleteTail(string(d.pending))
	if hold == len(d.pending) {
		return "", nil
	}
	out := ValidUTF8(string(d.pending[:len(d.pending)-hold]))
	d.pending = append(d.pending[:0], d.pending[len(d.pending)-hold:]...)
	return out, nil
}

// Flush returns the held-back bytes (a character cut short becomes U+FFFD)
// and resets the decoder for a new stream.
func (d *StreamDecoder) Flush() string {
	out := ValidUTF8(string(d.pending))
	d.pending = d.pending[:0]
	return out
}
