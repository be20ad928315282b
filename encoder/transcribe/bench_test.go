package transcribe

import (
	"math/rand/v2"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
)

// BenchmarkRulesStep is the per-sequence work of a greedy step besides the
// decoder, at Whisper's multilingual vocabulary: the logit filters with
// timestamps, the argmax and the token's log-probability.
func BenchmarkRulesStep(b *testing.B) {
	tk, err := tokenizer.Builtin(tokenizer.Multilingual, tokenizer.DefaultLanguages)
	if err != nil {
		b.Fatal(err)
	}
	g := DefaultGenerationConfig(tk)
	sp := tk.Specials()
	r := rules{beginSuppress: g.BeginSuppressTokens, suppress: g.SuppressTokens, timestamps: true, eot: sp.EOT,
		noTimestamps: sp.NoTimestamps, tsBegin: sp.TimestampBegin, maxInitial: 50}
	src := make([]float32, tk.VocabSize())
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range src {
		src[i] = float32(rng.NormFloat64() * 4)
	}
	x := make([]float32, len(src))
	sampled := []int{sp.TimestampBegin, 1000, 2000}
	b.ResetTimer()
	for range b.N {
		copy(x, src)
		s := &sampler{tokens: sampled[:len(sampled):len(sampled)]}
		s.next(&r, x, 0, nil)
	}
}
