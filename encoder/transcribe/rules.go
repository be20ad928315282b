package transcribe

import (
	"bytes"
	"compress/zlib"
	"math"
)

var negInf = float32(math.Inf(-1))

// rules are Whisper's logit filters for one window decode, applied in
// Whisper's order: SuppressBlank, SuppressTokens, then the timestamp rules.
type rules struct {
	beginSuppress []int // banned at the first sampled step
	suppress      []int // banned at every step
	forceTokens   bool  // ban <|endoftext|> (benchmark mode)
	timestamps    bool
	eot           int
	noTimestamps  int
	tsBegin       int // <|0.00|>
	maxInitial    int // the first timestamp's highest index; < 0: no bound
	// hfTimestamps applies the timestamp rules as transformers.js 4.x
	// does (the reference test's): no max-initial bound, no monotonic rule.
	hfTimestamps bool
}

// apply filters logits (one row, the vocabulary) in place, given the
// tokens sampled so far in this window (after the SOT sequence).
func (r *rules) apply(logits []float32, sampled []int) {
	if len(sampled) == 0 {
		ban(logits, r.beginSuppress)
	}
	ban(logits, r.suppress)
	if r.forceTokens {
		logits[r.eot] = negInf
	}
	if r.timestamps {
		r.applyTimestamps(logits, sampled)
	}
}

func ban(logits []float32, ids []int) {
	for _, id := range ids {
		logits[id] = negInf
	}
}

func banRange(logits []float32, from, to int) {
	for i := max(from, 0); i < min(to, len(logits)); i++ {
		logits[i] = negInf
	}
}

// applyTimestamps is Whisper's ApplyTimestampRules: timestamps come in
// pairs (a segment's end and the next one's start) except before
// <|endoftext|>, never decrease, a segment has nonzero length, the first
// token is a timestamp no later than maxInitial, and a timestamp is forced
// when the timestamps' total probability beats every text token's.
func (r *rules) applyTimestamps(logits []float32, sampled []int) {
	tb := r.tsBegin
	logits[r.noTimestamps] = negInf
	n := len(sampled)
	if r.hfTimestamps && n == 0 {
		banRange(logits, 0, tb)
		return
	}
	last := n >= 1 && sampled[n-1] >= tb
	penultimate := n < 2 || sampled[n-2] >= tb
	if last {
		if penultimate { // a pair just closed: text (or EOT) next
			banRange(logits, tb, len(logits))
		} else { // a segment's end: its successor's start or EOT
			banRange(logits, 0, r.eot)
		}
	}
	for i := n - 1; i >= 0 && !r.hfTimestamps; i-- {
		if sampled[i] >= tb {
			limit := sampled[i] + 1
			if last && !penultimate {
				limit = sampled[i]
			}
			banRange(logits, tb, limit)
			break
		}
	}
	if n == 0 {
		banRange(logits, 0, tb)
		if r.maxInitial >= 0 {
			banRange(logits, tb+r.maxInitial+1, len(logits))
		}
	}
	if timestampMassWins(logits, tb) {
		banRange(logits, 0, tb)
	}
}

// timestampMassWins reports whether log Σ p(timestamps) > max log p(text):
// the log-softmax normaliser cancels, so raw logits compare.
func timestampMassWins(logits []float32, tb int) bool {
	maxText := negInf
	for _, v := range logits[:tb] {
		if v > maxText {
			maxText = v
		}
	}
	return logSumExp(logits[tb:]) > float64(maxText)
}

// logSumExp is log Σ exp(x), skipping -Inf entries.
func logSumExp(x []float32) float64 {
	m := negInf
	for _, v := range x {
		if v > m {
			m = v
		}
	}
	if m == negInf {
		return math.Inf(-1)
	}
	s, mf := 0.0, float64(m)
	for _, v := range x {
		if v != negInf {
			s += math.Exp(float64(v) - mf)
		}
	}
	return mf + math.Log(s)
}

// argmax returns the first index of the largest value (torch's argmax), or
// -1 when every value is -Inf.
func argmax(x []float32) int {
	best, bi := negInf, -1
	for i, v := range x {
		if v > best {
			best, bi = v, i
		}
	}
	return bi
}

// logProb returns log softmax(x)[i].
func logProb(x []float32, i int) float64 {
	return float64(x[i]) - logSumExp(x)
}

// sample draws an index from softmax(x/temperature) with u uniform in [0, 1).
func sample(x []float32, temperature, u float64) int {
	m := float64(x[argmax(x)])
	total := 0.0
	for _, v := range x {
		total += math.Exp((float64(v) - m) / temperature)
	}
	target, acc, lastOK := u*total, 0.0, -1
	for i, v := range x {
		if v == negInf {
			continue
		}
		acc += math.Exp((float64(v) - m) / temperature)
		lastOK = i
		if acc > target {
			return i
		}
	}
	return lastOK
}

// compressionRatio is Whisper's repetitiveness measure: the UTF-8 length of
// text over its zlib-compressed length (level 6, like Python's
// zlib.compress). Go's deflate ends every stream with an empty stored block
// (4 bytes and a few bits) that zlib does not write; those 4 bytes are not
// counted. Go's encoder is not zlib's, so the length may still differ from
// Whisper's by a byte or two.
func compressionRatio(text string) float64 {
	if text == "" {
		return 0
	}
	var b bytes.Buffer
	w, _ := zlib.NewWriterLevel(&b, 6)
	_, _ = w.Write([]byte(text))
	_ = w.Close()
	return float64(len(text)) / float64(b.Len()-goFinalBlock)
}

// goFinalBlock is the byte length of the empty final stored block Go's
// deflate appends (its LEN and NLEN fields).
const goFinalBlock = 4
