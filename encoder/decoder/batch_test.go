package decoder

import (
	"context"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
)

// stepAlone decodes one check sequence by itself, one Step per token after
// the prefill, and returns its logits rows (as decodeStaggered lays them out).
func stepAlone(t *testing.T, d *Decoder, x *Cross, prompt, tokens []int) []float32 {
	t.Helper()
	s, err := d.NewSequence(x)
	if err != nil {
		t.Fatal(err)
	}
	b := d.NewBatch()
	out, err := b.Step(context.Background(), []Input{{Seq: s, Tokens: prompt, AllLogits: true}})
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Clone(out[0])
	for _, tok := range tokens[:len(tokens)-1] {
		out, err := b.Step(context.Background(), []Input{{Seq: s, Tokens: []int{tok}}})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, out[0]...)
	}
	return got
}

// TestBatchingIsExact: a sequence's logits do not depend on the company it
// keeps: decoded alone or with others joining and leaving, bit for bit.
func TestBatchingIsExact(t *testing.T) {
	c := readCheck(t, microCheck)
	for _, o := range configs() {
		t.Run(o.Kernels+"/"+o.Activations, func(t *testing.T) {
			d := load(t, microDir, o)
			batched := decodeStaggered(t, d, c)
			xs := crosses(t, d, c)
			for i, s := range c.Sequences {
				alone := stepAlone(t, d, xs[s.Enc], s.Prompt, s.Tokens)
				if !slices.Equal(alone, batched[i]) {
					t.Fatalf("sequence %d: logits alone differ from logits in the batch", i)
				}
			}
		})
	}
}

// TestPrefillEqualsSteps: a prompt prefilled as several rows gives the
// same cache as feeding it token by token (up to the float32 summation
// order of the GEMMs): the next step's logits agree.
func TestPrefillEqualsSteps(t *testing.T) {
	c := readCheck(t, microCheck)
	d := load(t, microDir, Options{Threads: 2})
	x := crosses(t, d, c)[1]
	s := c.Sequences[1]
	prefilled := stepAlone(t, d, x, s.Prompt, s.Tokens)
	var one []float32
	seq, _ := d.NewSequence(x)
	b := d.NewBatch()
	for _, tok := range append(slices.Clone(s.Prompt), s.Tokens[:len(s.Tokens)-1]...) {
		out, err := b.Step(context.Background(), []Input{{Seq: seq, Tokens: []int{tok}}})
		if err != nil {
			t.Fatal(err)
		}
		one = append(one, out[0]...)
	}
	compare(t, "token by token vs prefill", one, prefilled, d.Config().Vocab, 0)
}

// TestCloneAndTruncate: a cloned sequence continues exactly like the
// original; a truncated one re-decodes its last token to the same logits.
func TestCloneAndTruncate(t *testing.T) {
	c := readCheck(t, microCheck)
	d := load(t, microDir, Options{Threads: 2})
	x := crosses(t, d, c)[0]
	s := c.Sequences[0]
	seq, _ := d.NewSequence(x)
	b := d.NewBatch()
	if _, err := b.Step(context.Background(), []Input{{Seq: seq, Tokens: s.Prompt}}); err != nil {
		t.Fatal(err)
	}
	clone := seq.Clone()
	out, err := b.Step(context.Background(), []Input{{Seq: seq, Tokens: s.Tokens[:1]}, {Seq: clone, Tokens: s.Tokens[:1]}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out[0], out[1]) {
		t.Fatal("clone's logits differ from the original's")
	}
	first := slices.Clone(out[0])
	// the clone branches; the original is unaffected
	if _, err := b.Step(context.Background(), []Input{{Seq: clone, Tokens: s.Tokens[5:9]}}); err != nil {
		t.Fatal(err)
	}
	if err := seq.Truncate(seq.Len() - 1); err != nil {
		t.Fatal(err)
	}
	out, err = b.Step(context.Background(), []Input{{Seq: seq, Tokens: s.Tokens[:1]}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out[0], first) {
		t.Fatal("re-decoding a truncated token gives other logits")
	}
	if clone.Len() != len(s.Prompt)+5 || seq.Len() != len(s.Prompt)+1 {
		t.Fatalf("lengths %d and %d, want %d and %d", clone.Len(), seq.Len(), len(s.Prompt)+5, len(s.Prompt)+1)
	}
	if err := seq.Truncate(seq.Len() + 1); err == nil {
		t.Fatal("truncating past the end succeeded")
	}
}

// TestStepErrors: bad inputs are refused before anything advances.
func TestStepErrors(t *testing.T) {
	c := readCheck(t, microCheck)
	d := load(t, microDir, Options{Threads: 2})
	other := load(t, microDir, Options{Threads: 1})
	x := crosses(t, d, c)[0]
	seq, _ := d.NewSequence(x)
	full, _ := d.NewSequence(x)
	b := d.NewBatch()
	if _, err := b.Step(context.Background(), []Input{{Seq: full, Tokens: make([]int, 448)}}); err != nil {
		t.Fatal(err)
	}
	foreign, _ := other.NewSequence(crosses(t, other, c)[0])
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		in   []Input
		want string
	}{
		{"empty", context.Background(), nil, "no inputs"},
		{"no tokens", context.Background(), []Input{{Seq: seq}}, "has no tokens"},
		{"token", context.Background(), []Input{{Seq: seq, Tokens: []int{1, 1864}}}, "outside the vocabulary [0, 1864)"},
		{"negative", context.Background(), []Input{{Seq: seq, Tokens: []int{-1}}}, "outside the vocabulary"},
		{"context", context.Background(), []Input{{Seq: full, Tokens: []int{1}}}, "exceed the text context of 448"},
		{"twice", context.Background(), []Input{{Seq: seq, Tokens: []int{1}}, {Seq: seq, Tokens: []int{2}}}, "are the same sequence"},
		{"foreign", context.Background(), []Input{{Seq: foreign, Tokens: []int{1}}}, "another decoder"},
		{"align head", context.Background(), []Input{{Seq: seq, Tokens: []int{1}, AlignHeads: []Head{{2, 0}}, Weights: [][]float32{make([]float32, 1500)}}}, "alignment head 0 is (2, 0), the model has 2 layers of 4 heads"},
		{"align buffer", context.Background(), []Input{{Seq: seq, Tokens: []int{1, 2}, AlignHeads: []Head{{1, 3}}, Weights: [][]float32{make([]float32, 1500)}}}, "weights buffer of 1500 values, 2 tokens × 1500 positions need 3000"},
		{"align count", context.Background(), []Input{{Seq: seq, Tokens: []int{1}, AlignHeads: []Head{{1, 3}}}}, "1 alignment heads with 0 weight buffers"},
		{"canceled", canceled, []Input{{Seq: seq, Tokens: []int{1}}}, "context canceled"},
	} {
		_, err := b.Step(tc.ctx, tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	if seq.Len() != 0 {
		t.Fatalf("a refused step advanced the sequence to %d", seq.Len())
	}
	if _, err := d.NewSequence(crosses(t, other, c)[0]); err == nil {
		t.Error("a sequence over another decoder's window was accepted")
	}
	for _, tc := range []struct {
		hidden []float32
		p      int
		want   string
	}{
		{make([]float32, 64), 0, "0 encoder positions"},
		{make([]float32, 64*1501), 1501, "1 to 1500"},
		{make([]float32, 63), 1, "holds 63 values"},
		{nanAt(2*64, 70), 2, "encoder output [1][6] is NaN"},
	} {
		if _, err := d.NewCross(context.Background(), tc.hidden, tc.p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewCross(%d values, %d): error %v, want %q", len(tc.hidden), tc.p, err, tc.want)
		}
	}
}

func nanAt(n, i int) []float32 {
	s := make([]float32, n)
	s[i] = float32(math.NaN())
	return s
}

// TestConcurrentBatches: batches stepping at once on one decoder (sharing
// its workers) give the same logits as alone.
func TestConcurrentBatches(t *testing.T) {
	c := readCheck(t, microCheck)
	d := load(t, microDir, Options{Threads: 2})
	want := decodeStaggered(t, d, c)
	var wg sync.WaitGroup
	got := make([][][]float32, 3)
	for g := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[g] = decodeStaggered(t, d, c)
		}()
	}
	wg.Wait()
	for g := range got {
		for i := range want {
			if !slices.Equal(got[g][i], want[i]) {
				t.Fatalf("goroutine %d sequence %d: logits differ", g, i)
			}
		}
	}
}

// TestMemory: the documented cache sizes are what the caches hold.
func TestMemory(t *testing.T) {
	c := readCheck(t, microCheck)
	d := load(t, microDir, Options{Threads: 2})
	x := crosses(t, d, c)[0]
	if got, want := x.Bytes(), d.Config().CrossBytes(1500); got != want {
		t.Errorf("window holds %d bytes, CrossBytes says %d", got, want)
	}
	seq, _ := d.NewSequence(x)
	b := d.NewBatch()
	if _, err := b.Step(context.Background(), []Input{{Seq: seq, Tokens: make([]int, 65)}}); err != nil {
		t.Fatal(err)
	}
	if got, want := seq.Bytes(), d.Config().SequenceBytes(65); got != want || want != d.Config().SequenceBytes(128) {
		t.Errorf("sequence of 65 tokens holds %d bytes, SequenceBytes says %d", got, want)
	}
	base := Config{DModel: 512, Layers: 6, Heads: 8, FFN: 2048, Vocab: 51865, MaxTargetPositions: 448, MaxSourcePositions: 1500}
	t.Logf("whisper-base: window %d bytes, sequence of 448 tokens %d bytes, of 64 tokens %d bytes", base.CrossBytes(1500), base.SequenceBytes(448), base.SequenceBytes(64))
}

// TestClose: calls after Close fail cleanly; Close twice is fine.
func TestClose(t *testing.T) {
	c := readCheck(t, microCheck)
	d, err := LoadHF(microDir, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	x := crosses(t, d, c)[0]
	s, _ := d.NewSequence(x)
	d.Close()
	d.Close()
	if _, err := d.NewBatch().Step(context.Background(), []Input{{Seq: s, Tokens: []int{1}}}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Step after Close: %v", err)
	}
	if _, err := d.NewCross(context.Background(), make([]float32, 64), 1); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("NewCross after Close: %v", err)
	}
}
