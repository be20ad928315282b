package decoder

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/kernels"
	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
)

const repo = "../.."

var (
	microDir   = filepath.Join(repo, "testdata/models/hf-micro")
	microCheck = filepath.Join(repo, "testdata/golden/hf-micro")
)

// configs lists every kernel/activation configuration, those this machine
// cannot run included: load skips them with the reason.
func configs() []Options {
	var out []Options
	for _, isa := range kernels.All() {
		if isa != kernels.AMX {
			out = append(out, Options{Kernels: isa.String(), Activations: "fp32", Threads: 2})
		}
		if isa == kernels.Portable || isa >= kernels.AVX512BF16 {
			out = append(out, Options{Kernels: isa.String(), Activations: "bf16", Threads: 2})
		}
	}
	return out
}

func readNPY(t testing.TB, path string) npy.Array {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := npy.Read(f, 1<<28)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return a
}

// check is a decoder check: forced sequences over encoder windows
// (testdata/gen/gen_whisper_hf.py writes it).
type check struct {
	Sequences []struct {
		Enc    int   `json:"enc"`
		Prompt []int `json:"prompt"`
		Tokens []int `json:"tokens"`
	} `json:"sequences"`
	enc npy.Array
}

func readCheck(t testing.TB, dir string) check {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "decoder.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c check
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	c.enc = readNPY(t, filepath.Join(dir, "enc.npy"))
	return c
}

func load(t testing.TB, dir string, o Options) *Decoder {
	t.Helper()
	if k := o.Kernels; k != "" && k != "auto" {
		isa, err := kernels.ParseISA(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := isa.Check(); err != nil {
			t.Skipf("kernels %s/%s not run on this machine: %v", o.Kernels, o.Activations, err)
		}
	}
	d, err := LoadHF(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// crosses computes the windows of the check's encoder outputs.
func crosses(t testing.TB, d *Decoder, c check) []*Cross {
	t.Helper()
	p, dm := c.enc.Shape[1], c.enc.Shape[2]
	var out []*Cross
	for w := range c.enc.Shape[0] {
		x, err := d.NewCross(context.Background(), c.enc.Data[w*p*dm:(w+1)*p*dm], p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, x)
	}
	return out
}

// decodeStaggered decodes every check sequence with continuous batching:
// sequence i joins at step 2i (its prompt prefilled as several rows, all
// logits kept), then advances one forced token per step alongside the
// others, and leaves when its tokens run out. Returns each sequence's
// logits rows, as decoder_golden.js lays them out.
func decodeStaggered(t testing.TB, d *Decoder, c check) [][]float32 {
	t.Helper()
	xs := crosses(t, d, c)
	b := d.NewBatch()
	n := len(c.Sequences)
	seqs, next, got := make([]*Sequence, n), make([]int, n), make([][]float32, n)
	for step := 0; ; step++ {
		var in []Input
		var who []int
		for i, s := range c.Sequences {
			switch {
			case step == 2*i:
				seq, err := d.NewSequence(xs[s.Enc])
				if err != nil {
					t.Fatal(err)
				}
				seqs[i] = seq
				in = append(in, Input{Seq: seq, Tokens: s.Prompt, AllLogits: true})
				who = append(who, i)
			case seqs[i] != nil && next[i] < len(s.Tokens)-1:
				in = append(in, Input{Seq: seqs[i], Tokens: s.Tokens[next[i] : next[i]+1]})
				next[i]++
				who = append(who, i)
			}
		}
		if len(in) == 0 {
			break
		}
		out, err := b.Step(context.Background(), in)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		for j, i := range who {
			got[i] = append(got[i], out[j]...)
		}
	}
	for i, s := range seqs {
		if want := len(c.Sequences[i].Prompt) + len(c.Sequences[i].Tokens) - 1; s.Len() != want {
			t.Fatalf("sequence %d holds %d tokens, want %d", i, s.Len(), want)
		}
	}
	return got
}

// compare requires every logits row to match the reference: cosine ≥
// 0.9999 and max|Δ| ≤ 2e−2·max|ref|. It returns the worst cosine and
// counts the rows whose argmax differs (allowed only where the
// reference's top two are within margin).
func compare(t *testing.T, what string, got, ref []float32, vocab int, margin float64) (minCos float64, flips int) {
	t.Helper()
	if len(got) != len(ref) {
		t.Fatalf("%s: %d logits, reference %d", what, len(got), len(ref))
	}
	minCos = 1
	for r := 0; r < len(ref)/vocab; r++ {
		g, w := got[r*vocab:(r+1)*vocab], ref[r*vocab:(r+1)*vocab]
		var dot, gg, ww, maxd, maxw float64
		ga, wa := 0, 0
		for k := range w {
			a, b := float64(g[k]), float64(w[k])
			if math.IsNaN(a) {
				t.Fatalf("%s row %d: NaN logit at %d", what, r, k)
			}
			dot, gg, ww = dot+a*b, gg+a*a, ww+b*b
			maxd, maxw = math.Max(maxd, math.Abs(a-b)), math.Max(maxw, math.Abs(b))
			if g[k] > g[ga] {
				ga = k
			}
			if w[k] > w[wa] {
				wa = k
			}
		}
		cos := dot / math.Sqrt(gg*ww)
		minCos = math.Min(minCos, cos)
		if cos < 0.9999 || maxd > 2e-2*maxw {
			t.Errorf("%s row %d: cosine %.6f, max|Δ| %.3g (max|ref| %.3g)", what, r, cos, maxd, maxw)
		}
		if ga != wa {
			flips++
			if gap := float64(w[wa] - w[ga]); gap > margin {
				t.Errorf("%s row %d: argmax %d, reference %d ahead by %.3g", what, r, ga, wa, gap)
			}
		}
	}
	return minCos, flips
}

// TestMicroVsORT decodes the committed fixture's check sequences (forced
// tokens over two windows, prompts prefilled, sequences joining and
// leaving) and compares every logits row with ONNX Runtime's
// decoder_model/decoder_with_past on the same BF16-rounded weights, and
// with PyTorch's.
func TestMicroVsORT(t *testing.T) {
	c := readCheck(t, microCheck)
	for _, o := range configs() {
		t.Run(o.Kernels+"/"+o.Activations, func(t *testing.T) {
			d := load(t, microDir, o)
			got := decodeStaggered(t, d, c)
			for i := range got {
				for _, ref := range []string{"ort", "torch"} {
					want := readNPY(t, filepath.Join(microCheck, fmt.Sprintf("%s_%d.npy", ref, i)))
					cos, flips := compare(t, fmt.Sprintf("sequence %d vs %s", i, ref), got[i], want.Data, d.Config().Vocab, 0.05)
					t.Logf("sequence %d vs %s: %d rows, min cosine %.7f, argmax differs in %d", i, ref, len(want.Data)/d.Config().Vocab, cos, flips)
				}
			}
		})
	}
}

// TestAlignmentWeights: the cross-attention weights of the alignment heads
// (generation_config.json's alignment_heads), collected over the prefill
// and every step, match PyTorch's softmax(q·kᵀ/√hd) for the same tokens.
func TestAlignmentWeights(t *testing.T) {
	c := readCheck(t, microCheck)
	var gen struct {
		AlignmentHeads [][2]int `json:"alignment_heads"`
	}
	b, err := os.ReadFile(filepath.Join(microDir, "generation_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &gen); err != nil {
		t.Fatal(err)
	}
	var heads []Head
	for _, h := range gen.AlignmentHeads {
		heads = append(heads, Head{Layer: h[0], Head: h[1]})
	}
	want := readNPY(t, filepath.Join(microCheck, "torch_align_1.npy")) // [heads][rows][positions]
	for _, o := range configs() {
		t.Run(o.Kernels+"/"+o.Activations, func(t *testing.T) {
			d := load(t, microDir, o)
			s := c.Sequences[1]
			x := crosses(t, d, c)[s.Enc]
			p := x.Positions()
			seq, _ := d.NewSequence(x)
			batch := d.NewBatch()
			got := make([][]float32, len(heads))
			feed := append([][]int{s.Prompt}, make([][]int, len(s.Tokens)-1)...)
			for j, tok := range s.Tokens[:len(s.Tokens)-1] {
				feed[j+1] = []int{tok}
			}
			for _, toks := range feed {
				in := Input{Seq: seq, Tokens: toks, AlignHeads: heads, Weights: make([][]float32, len(heads))}
				for j := range heads {
					in.Weights[j] = make([]float32, len(toks)*p)
				}
				if _, err := batch.Step(context.Background(), []Input{in}); err != nil {
					t.Fatal(err)
				}
				for j := range heads {
					got[j] = append(got[j], in.Weights[j]...)
				}
			}
			rows := len(got[0]) / p
			for j := range heads {
				minCos, worstRel, worstSum := 1.0, 0.0, 0.0
				for r := range rows {
					g, w := got[j][r*p:(r+1)*p], want.Data[(j*rows+r)*p:(j*rows+r+1)*p]
					var sum, dot, gg, ww, maxd, maxw float64
					for k := range g {
						a, b := float64(g[k]), float64(w[k])
						sum, dot, gg, ww = sum+a, dot+a*b, gg+a*a, ww+b*b
						maxd, maxw = math.Max(maxd, math.Abs(a-b)), math.Max(maxw, b)
					}
					minCos = math.Min(minCos, dot/math.Sqrt(gg*ww))
					worstRel, worstSum = math.Max(worstRel, maxd/maxw), math.Max(worstSum, math.Abs(sum-1))
				}
				if minCos < 0.9999 || worstRel > 2e-2 || worstSum > 1e-4 {
					t.Errorf("head %v: min cosine %.6f, max|Δ|/max|w| %.3g vs PyTorch, worst |Σw−1| %.3g", heads[j], minCos, worstRel, worstSum)
				}
				t.Logf("head %v: %d rows × %d positions vs PyTorch: min cosine %.7f, max|Δ|/max|w| %.2e; worst |Σw−1| %.1e", heads[j], rows, p, minCos, worstRel, worstSum)
			}
		})
	}
}
