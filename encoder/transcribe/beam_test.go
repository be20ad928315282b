package transcribe

import (
	"context"
	"math"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/decoder"
)

// rescore runs tokens (then <|endoftext|> when ended) through a fresh
// sequence of the window and sums their log-probabilities under the rules,
// as the search must have.
func rescore(t *testing.T, tr *Transcriber, job *windowJob, tokens []int, ended bool) float64 {
	t.Helper()
	first, _, seq, err := tr.prefill(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	b := tr.cfg.Decoder.NewBatch()
	logits, sum := first, 0.0
	all := tokens
	if ended {
		all = append(append([]int{}, tokens...), tr.sp.EOT)
	}
	for i, tok := range all {
		job.rules.apply(logits, tokens[:min(i, len(tokens))])
		sum += logProb(logits, tok)
		if i == len(all)-1 {
			break
		}
		out, err := b.Step(context.Background(), []decoder.Input{{Seq: seq, Tokens: []int{tok}}})
		if err != nil {
			t.Fatal(err)
		}
		logits = append([]float32(nil), out[0]...)
	}
	return sum
}

// TestBeamSearch: the winner's log-probability is what its tokens score
// when decoded afresh (the beams' caches were carried and cloned right),
// per token it is no worse than greedy's when greedy also ends, and beam
// size 1 is greedy.
func TestBeamSearch(t *testing.T) {
	tr := newMicro(t, 0)
	for _, c := range []struct {
		name string
		pcm  []float32
		o    Options
	}{
		{"jfk", jfk(t), Options{Language: "en", MaxTokens: 40}},
		{"jfk no timestamps", jfk(t), Options{Language: "en", MaxTokens: 40, WithoutTimestamps: true}},
		{"noise", noise(10*SampleRate, 0.3, 7), Options{Language: "en", MaxTokens: 30}},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := c.o
			o.Temperatures = []float64{0}
			o = o.Defaulted()
			r := &run{t: tr, o: o, pcm: audio.Float32(c.pcm), rng: tr.newRand()}
			r.res.Language = "en"
			cross, err := encodeCross(context.Background(), r, 0)
			if err != nil {
				t.Fatal(err)
			}
			job, err := r.job(cross)
			if err != nil {
				t.Fatal(err)
			}
			greedy, err := tr.decodeWindow(context.Background(), job, 0, 1, r.rng)
			if err != nil {
				t.Fatal(err)
			}
			one, err := tr.beamSearch(context.Background(), job, 1)
			if err != nil {
				t.Fatal(err)
			}
			if !equalInts(one.tokens, greedy.tokens) {
				t.Errorf("beam size 1: %v, greedy %v", one.tokens, greedy.tokens)
			}
			beam, err := tr.beamSearch(context.Background(), job, 4)
			if err != nil {
				t.Fatal(err)
			}
			ended := len(beam.tokens) < o.MaxTokens
			if got := rescore(t, tr, job, beam.tokens, ended); math.Abs(got-beam.sumLogProb) > 1e-3 {
				t.Errorf("beam winner scores %.5f afresh, search said %.5f (%d tokens)", got, beam.sumLogProb, len(beam.tokens))
			}
			t.Logf("greedy %d tokens avg %.4f; beam 4: %d tokens avg %.4f", len(greedy.tokens), greedy.avgLogProb, len(beam.tokens), beam.avgLogProb)
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
