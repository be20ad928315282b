package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// The GPT-2 pre-tokenisation pattern, which Whisper (tiktoken) and Hugging
// Face's ByteLevel pre-tokenizer both use:
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// Go's regexp has no lookahead, so nextPiece reproduces the leftmost-first
// match of that pattern by hand. \s is Unicode's White_Space property (as in
// tiktoken's Rust regex; Go's unicode.IsSpace), \p{L} and \p{N} are the
// general categories. A byte that is not valid UTF-8 counts as one "other"
// character, so any byte string splits and round-trips.

// class is the pattern's view of one character.
type class uint8

const (
	classSpace  class = iota // \s
	classLetter              // \p{L}
	classNumber              // \p{N}
	classOther               // [^\s\p{L}\p{N}], and invalid bytes
)

func classOf(r rune) class {
	switch {
	case r < utf8.RuneSelf:
		return asciiClass[r]
	case unicode.IsSpace(r):
		return classSpace
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	}
	return classOther
}

var asciiClass = func() (t [utf8.RuneSelf]class) {
	for r := range t {
		switch {
		case r == ' ' || (r >= '\t' && r <= '\r'):
			t[r] = classSpace
		case (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'):
			t[r] = classLetter
		case r >= '0' && r <= '9':
			t[r] = classNumber
		default:
			t[r] = classOther
		}
	}
	return t
}()

// charAt returns the class and byte width of the character at s[i]
// (an invalid byte is one "other" character of width 1).
func charAt(s string, i int) (class, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && n == 1 {
		return classOther, 1
	}
	return classOf(r), n
}

// runEnd returns the end of the run of class c starting at s[i].
func runEnd(s string, i int, c class) int {
	for i < len(s) {
		ci, n := charAt(s, i)
		if ci != c {
			break
		}
		i += n
	}
	return i
}

// contraction returns the length of the contraction ('s 't 're 've 'm 'll 'd)
// at s[i], which starts with an apostrophe, or 0.
func contraction(s string, i int) int {
	if i+1 >= len(s) {
		return 0
	}
	switch s[i+1] {
	case 's', 't', 'm', 'd':
		return 2
	}
	if i+2 < len(s) {
		switch s[i+1 : i+3] {
		case "re", "ve", "ll":
			return 3
		}
	}
	return 0
}

// nextPiece returns the end of the pattern's match starting at s[i] (i < len(s)).
func nextPiece(s string, i int) int {
	if s[i] == '\'' {
		if n := contraction(s, i); n > 0 {
			return i + n
		}
	}
	c, n := charAt(s, i)
	// ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: one space may lead a run.
	if s[i] == ' ' && i+1 < len(s) {
		if c2, n2 := charAt(s, i+1); c2 != classSpace {
			return runEnd(s, i+1+n2, c2)
		}
	}
	if c != classSpace {
		return runEnd(s, i+n, c)
	}
	// `\s+(?!\S)`: the whitespace run, less its last character when a
	// non-space follows (that character then leads the next piece);
	// `\s+` when the run is a single character followed by a non-space.
	end, last := i+n, i
	for end < len(s) {
		ce, ne := charAt(s, end)
		if ce != classSpace {
			break
		}
		last = end
		end += ne
	}
	if end < len(s) && last > i {
		return last
	}
	return end
}

// splitPieces calls fn for each pre-token of s, in order.
func splitPieces(s string, fn func(piece string)) {
	for i := 0; i < len(s); {
		j := nextPiece(s, i)
		fn(s[i:j])
		i = j
	}
}
