package transcribe

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/xdna-whisper/xdna-whisper/encoder/decoder"
)

// windowResult is one decode of a window (Whisper's DecodingResult).
type windowResult struct {
	tokens      []int // sampled, without <|endoftext|>
	text        string
	sumLogProb  float64
	avgLogProb  float64
	noSpeech    float64
	temperature float64
	compression float64
}

// windowJob is what decoding one window needs besides the temperature.
type windowJob struct {
	cross    *decoder.Cross
	prefix   []int // <|startofprev|> and the prompt, or none
	sot      []int // the SOT sequence
	rules    rules
	maxLen   int // sampled tokens at most
	noSpeech bool
}

// client is one request's handle on the scheduler while it decodes.
type client struct {
	t   *Transcriber
	req *stepReq
}

func (t *Transcriber) join() *client {
	t.sched.join()
	return &client{t: t, req: &stepReq{errc: make(chan error, 1)}}
}

func (c *client) leave() { c.t.sched.leave(c.req) }

// step advances seqs by tokens[i] each; the logits land in c.req.out.
func (c *client) step(ctx context.Context, in []decoder.Input) ([][]float32, error) {
	c.req.in = in
	for len(c.req.out) < len(in) {
		c.req.out = append(c.req.out, nil)
	}
	if err := c.t.sched.step(ctx, c.req); err != nil {
		return nil, err
	}
	return c.req.out[:len(in)], nil
}

// detectLanguage is Whisper's detect_language: the logits after
// <|startoftranscript|> alone, over the language tokens only.
func (t *Transcriber) detectLanguage(ctx context.Context, cross *decoder.Cross) (string, error) {
	seq, err := t.cfg.Decoder.NewSequence(cross)
	if err != nil {
		return "", err
	}
	c := t.join()
	defer c.leave()
	out, err := c.step(ctx, []decoder.Input{{Seq: seq, Tokens: []int{t.sp.SOT}}})
	if err != nil {
		return "", err
	}
	best, code := negInf, ""
	for _, id := range t.tk.LanguageTokens() {
		if v := out[0][id]; v > best || code == "" {
			l, _ := t.tk.LanguageOf(id)
			best, code = v, l
		}
	}
	return code, nil
}

// decodeWindow decodes a window at one temperature: greedy at 0, else n
// samples of which the most likely (by mean log-probability) wins.
func (t *Transcriber) decodeWindow(ctx context.Context, job *windowJob, temperature float64, n int, rng *rand.Rand) (windowResult, error) {
	first, noSpeech, seq, err := t.prefill(ctx, job)
	if err != nil {
		return windowResult{}, err
	}
	if temperature == 0 {
		n = 1
	}
	g := make([]*sampler, n)
	for i := range g {
		s := seq
		if i > 0 {
			s = seq.Clone()
		}
		g[i] = &sampler{seq: s}
	}
	c := t.join()
	defer c.leave()
	logits := make([]float32, len(first))
	for _, s := range g {
		copy(logits, first)
		s.next(&job.rules, logits, temperature, rng)
	}
	for {
		var in []decoder.Input
		var who []*sampler
		for _, s := range g {
			if s.done || len(s.tokens) >= job.maxLen || s.seq.Len() >= t.dcfg.MaxTargetPositions {
				s.done = true
				continue
			}
			in = append(in, decoder.Input{Seq: s.seq, Tokens: []int{s.tokens[len(s.tokens)-1]}})
			who = append(who, s)
		}
		if len(in) == 0 {
			break
		}
		out, err := c.step(ctx, in)
		if err != nil {
			return windowResult{}, err
		}
		for i, s := range who {
			s.next(&job.rules, out[i], temperature, rng)
		}
	}
	best := t.pick(g)
	best.noSpeech = noSpeech
	best.temperature = temperature
	return best, nil
}

// prefill runs the window's prompt and returns the logits of the first
// sampled token and the no-speech probability (at <|startoftranscript|>).
func (t *Transcriber) prefill(ctx context.Context, job *windowJob) ([]float32, float64, *decoder.Sequence, error) {
	seq, err := t.cfg.Decoder.NewSequence(job.cross)
	if err != nil {
		return nil, 0, nil, err
	}
	if len(job.prefix)+len(job.sot) >= t.dcfg.MaxTargetPositions {
		return nil, 0, nil, fmt.Errorf("transcribe: prompt of %d tokens leaves no room in the %d-token text context", len(job.prefix)+len(job.sot), t.dcfg.MaxTargetPositions)
	}
	c := t.join()
	defer c.leave()
	if len(job.prefix) > 0 {
		if _, err := c.step(ctx, []decoder.Input{{Seq: seq, Tokens: job.prefix}}); err != nil {
			return nil, 0, nil, err
		}
	}
	out, err := c.step(ctx, []decoder.Input{{Seq: seq, Tokens: job.sot, AllLogits: true}})
	if err != nil {
		return nil, 0, nil, err
	}
	v := t.dcfg.Vocab
	rows := out[0]
	noSpeech := 0.0
	if job.noSpeech {
		noSpeech = math.Exp(logProb(rows[:v], t.sp.NoSpeech))
	}
	last := append([]float32(nil), rows[len(rows)-v:]...)
	return last, noSpeech, seq, nil
}

// sampler is one sequence of a window decode.
type sampler struct {
	seq        *decoder.Sequence
	tokens     []int // sampled so far, <|endoftext|> included when reached
	sumLogProb float64
	done       bool
}

// next filters logits, picks the next token and accounts its log-probability.
func (s *sampler) next(r *rules, logits []float32, temperature float64, rng *rand.Rand) {
	r.apply(logits, s.tokens)
	var tok int
	if temperature == 0 {
		tok = argmax(logits)
	} else {
		tok = sample(logits, temperature, rng.Float64())
	}
	if tok < 0 { // every token banned: end the window
		tok = r.eot
	} else {
		s.sumLogProb += logProb(logits, tok)
	}
	s.tokens = append(s.tokens, tok)
	if tok == r.eot {
		s.done = true
	}
}

// pick ranks the samples as Whisper's MaximumLikelihoodRanker (sum of
// log-probabilities over length) and fills in the winner's statistics.
func (t *Transcriber) pick(g []*sampler) windowResult {
	var best windowResult
	bestScore := math.Inf(-1)
	for i, s := range g {
		toks := s.tokens
		if k := indexOf(toks, t.sp.EOT); k >= 0 {
			toks = toks[:k]
		}
		score := s.sumLogProb / float64(max(len(toks), 1))
		if i == 0 || score > bestScore {
			bestScore = score
			best = windowResult{tokens: toks, sumLogProb: s.sumLogProb}
		}
	}
	best.avgLogProb = best.sumLogProb / float64(len(best.tokens)+1)
	best.text, _ = t.tk.Decode(best.tokens)
	best.compression = compressionRatio(best.text)
	return best
}

func indexOf(x []int, v int) int {
	for i, e := range x {
		if e == v {
			return i
		}
	}
	return -1
}

// needsFallback is Whisper's test of a window decode: too repetitive
// (compression ratio) or too unlikely (mean log-probability), unless the
// window is silence.
func needsFallback(r windowResult, o Options) bool {
	fallback := false
	if !math.IsNaN(o.CompressionRatioThreshold) && r.compression > o.CompressionRatioThreshold {
		fallback = true
	}
	lowProb := !math.IsNaN(o.LogProbThreshold) && r.avgLogProb < o.LogProbThreshold
	if lowProb {
		fallback = true
	}
	if !math.IsNaN(o.NoSpeechThreshold) && r.noSpeech > o.NoSpeechThreshold && lowProb {
		fallback = false
	}
	return fallback
}

// decodeWithFallback decodes at each temperature in turn until one result
// passes needsFallback; the last result is kept when none does. At
// temperature 0 a BeamSize > 1 searches with beams, above it BestOf samples
// compete.
func (t *Transcriber) decodeWithFallback(ctx context.Context, job *windowJob, o Options, rng *rand.Rand) (windowResult, error) {
	var r windowResult
	for _, temp := range o.Temperatures {
		var err error
		if temp == 0 && o.BeamSize > 1 {
			r, err = t.beamSearch(ctx, job, o.BeamSize)
		} else {
			r, err = t.decodeWindow(ctx, job, temp, o.BestOf, rng)
		}
		if err != nil {
			return r, err
		}
		if !needsFallback(r, o) {
			break
		}
	}
	return r, nil
}
