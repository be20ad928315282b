package transcribe

import (
	"context"
	"math"
	"slices"
	"sort"

	"github.com/xdna-whisper/xdna-whisper/encoder/decoder"
)

// beam is one live hypothesis of a beam search.
type beam struct {
	seq    *decoder.Sequence
	tokens []int // sampled so far
	sum    float64
}

// candidate is a beam extended by one token.
type candidate struct {
	from  int // index of the beam it extends
	token int
	score float64
}

// finished is a hypothesis that reached <|endoftext|> (tokens without it).
type finished struct {
	tokens []int
	sum    float64
}

// beamSearch is Whisper's BeamSearchDecoder at temperature 0 (patience 1):
// each step every beam proposes its size+1 most likely next tokens; the
// best size candidates that do not end go on, those that end are kept
// until size of them are finished. The winner is the finished hypothesis
// with the best log-probability per token.
func (t *Transcriber) beamSearch(ctx context.Context, job *windowJob, size int) (windowResult, error) {
	first, noSpeech, seq, err := t.prefill(ctx, job)
	if err != nil {
		return windowResult{}, err
	}
	c := t.join()
	defer c.leave()
	beams := []*beam{{seq: seq}}
	rows := [][]float32{first}
	var done []finished
	for {
		cands := t.candidates(job, beams, rows, size)
		var next []*beam
		var ended []finished
		used := make([]bool, len(beams))
		for _, cd := range cands {
			b := beams[cd.from]
			if cd.token == t.sp.EOT {
				ended = append(ended, finished{tokens: slices.Clone(b.tokens), sum: cd.score})
				continue
			}
			s := b.seq
			if used[cd.from] {
				s = s.Clone()
			}
			used[cd.from] = true
			next = append(next, &beam{seq: s, tokens: append(slices.Clone(b.tokens), cd.token), sum: cd.score})
			if len(next) == size {
				break
			}
		}
		for _, f := range ended {
			if len(done) >= size {
				break
			}
			done = append(done, f)
		}
		beams = next
		if len(done) >= size || len(beams) == 0 || len(beams[0].tokens) >= job.maxLen || beams[0].seq.Len() >= t.dcfg.MaxTargetPositions {
			break
		}
		in := make([]decoder.Input, len(beams))
		for i, b := range beams {
			in[i] = decoder.Input{Seq: b.seq, Tokens: b.tokens[len(b.tokens)-1:]}
		}
		if rows, err = c.step(ctx, in); err != nil {
			return windowResult{}, err
		}
	}
	return t.pickFinished(done, beams, size, noSpeech), nil
}

// candidates filters each beam's logits and returns every beam's size+1
// best extensions, best first (ties in beam, then token order).
func (t *Transcriber) candidates(job *windowJob, beams []*beam, rows [][]float32, size int) []candidate {
	var cands []candidate
	for i, b := range beams {
		logits := rows[i]
		job.rules.apply(logits, b.tokens)
		lse := logSumExp(logits)
		for _, tok := range topK(logits, size+1) {
			cands = append(cands, candidate{from: i, token: tok, score: b.sum + float64(logits[tok]) - lse})
		}
	}
	sort.SliceStable(cands, func(a, b int) bool { return cands[a].score > cands[b].score })
	return cands
}

// topK returns the indices of the k largest finite values, largest first
// (lower index first among equals).
func topK(x []float32, k int) []int {
	var idx []int
	for i, v := range x {
		if v == negInf {
			continue
		}
		pos := sort.Search(len(idx), func(j int) bool { return x[idx[j]] < v })
		if pos >= k {
			continue
		}
		idx = slices.Insert(idx, pos, i)
		if len(idx) > k {
			idx = idx[:k]
		}
	}
	return idx
}

// pickFinished completes the finished list with the best live beams when
// fewer than size ended, and ranks by log-probability per token.
func (t *Transcriber) pickFinished(done []finished, beams []*beam, size int, noSpeech float64) windowResult {
	if len(done) < size {
		live := slices.Clone(beams)
		sort.SliceStable(live, func(a, b int) bool { return live[a].sum > live[b].sum })
		for _, b := range live {
			if len(done) >= size {
				break
			}
			done = append(done, finished{tokens: b.tokens, sum: b.sum})
		}
	}
	best, bestScore := 0, math.Inf(-1)
	for i, f := range done {
		if s := f.sum / float64(max(len(f.tokens), 1)); s > bestScore {
			best, bestScore = i, s
		}
	}
	var r windowResult
	if len(done) > 0 {
		r.tokens, r.sumLogProb = done[best].tokens, done[best].sum
	}
	r.avgLogProb = r.sumLogProb / float64(len(r.tokens)+1)
	r.text, _ = t.tk.Decode(r.tokens)
	r.compression = compressionRatio(r.text)
	r.noSpeech = noSpeech
	return r
}
