package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
)

// vocab is the mergeable part of a byte-level BPE vocabulary: token bytes ↔ id,
// where an id is also the token's merge rank (lower merges first). All token
// bytes live in one string so the map keys and the decode table share memory.
type vocab struct {
	blob   string           // every token's bytes, back to back, in id order
	offs   []uint32         // token id's bytes are blob[offs[id]:offs[id+1]]
	ranks  map[string]int32 // token bytes → id
	byteID [256]int32       // id of each single byte
}

// size is the number of mergeable tokens (ids 0 … size-1).
func (v *vocab) size() int { return len(v.offs) - 1 }

// token returns the bytes of mergeable token id.
func (v *vocab) token(id int) string { return v.blob[v.offs[id]:v.offs[id+1]] }

// buildVocab checks a token list (index = id = rank) and indexes it: every
// single byte must be a token and no two ids may share bytes.
func buildVocab(tokens [][]byte, where string) (*vocab, error) {
	total := 0
	for _, t := range tokens {
		total += len(t)
	}
	var sb bytes.Buffer
	sb.Grow(total)
	v := &vocab{offs: make([]uint32, 0, len(tokens)+1), ranks: make(map[string]int32, len(tokens))}
	for i := range v.byteID {
		v.byteID[i] = -1
	}
	v.offs = append(v.offs, 0)
	for _, t := range tokens {
		sb.Write(t)
		v.offs = append(v.offs, uint32(sb.Len()))
	}
	v.blob = sb.String()
	for id := range tokens {
		t := v.token(id)
		if prev, dup := v.ranks[t]; dup {
			return nil, fmt.Errorf("%s: token %d has the same bytes %q as token %d", where, id, t, prev)
		}
		v.ranks[t] = int32(id)
		if len(t) == 1 {
			v.byteID[t[0]] = int32(id)
		}
	}
	for b, id := range v.byteID {
		if id < 0 {
			return nil, fmt.Errorf("%s: byte 0x%02x has no token (a byte-level vocabulary needs all 256)", where, b)
		}
	}
	return v, nil
}

// parseTiktoken reads a tiktoken rank file: one `<base64 of the token's bytes>
// <rank>` per line, ranks 0, 1, 2, … in order. A lone "=" is the empty token
// (multilingual.tiktoken ends with one at rank 50,256).
func parseTiktoken(r io.Reader, name string) (*vocab, error) {
	var tokens [][]byte
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		fields := bytes.Fields(text)
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s:%d: want `<base64> <rank>`, found %d fields", name, line, len(fields))
		}
		rank, err := strconv.Atoi(string(fields[1]))
		if err != nil || rank != len(tokens) {
			return nil, fmt.Errorf("%s:%d: want rank %d, found %q", name, line, len(tokens), fields[1])
		}
		tok, err := decodeBase64(fields[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: token bytes: %w", name, line, err)
		}
		tokens = append(tokens, tok)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%s: no tokens", name)
	}
	return buildVocab(tokens, name)
}

// decodeBase64 decodes standard base64, accepting "=" alone as the empty
// string (Python's lenient b64decode reads it so).
func decodeBase64(s []byte) ([]byte, error) {
	if string(s) == "=" {
		return []byte{}, nil
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(out, s)
	if err != nil {
		return nil, err
	}
	return out[:n], nil
}
