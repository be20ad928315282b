package decoder

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/kernels"
)

// stepMatrix matches the tensors Options.Weights "int8" quantises.
var stepMatrix = regexp.MustCompile(`^(embed_tokens|layers\.\d+\.(self_attn\.(q|k|v|out)_proj|encoder_attn\.(q|out)_proj|fc1|fc2))\.weight$`)

// gridSource is a Source whose step-time matrices are rounded, row by row,
// to their int8 grid: int8 weights of it are exactly its bf16 weights.
type gridSource struct{ Source }

func (g gridSource) Tensor(name string) ([]int, []uint16, error) {
	shape, data, err := g.Source.Tensor(name)
	if err != nil || !stepMatrix.MatchString(name) {
		return shape, data, err
	}
	out := append([]uint16(nil), data...)
	in := shape[len(shape)-1]
	tmp := make([]float32, in)
	for r := 0; r+in <= len(out); r += in {
		if err := kernels.RoundInt8BF16(out[r:r+in], tmp); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return shape, out, nil
}

// newMicro loads the micro fixture with o, rounded to the int8 grid when grid.
func newMicro(t *testing.T, o Options, grid bool) *Decoder { return newModel(t, microDir, o, grid) }

// newModel loads the model directory dir with o, rounded to the int8 grid
// when grid.
func newModel(t *testing.T, dir string, o Options, grid bool) *Decoder {
	t.Helper()
	cfg, err := ReadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	hf, err := OpenHF(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	var src Source = hf
	if grid {
		src = gridSource{hf}
	}
	d, err := New(cfg, src, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// TestInt8Exact: on the micro fixture rounded to the int8 grid, every
// logit of the staggered check decode with int8 weights equals, bit for
// bit, the logit with bf16 weights, at every ISA and activation precision
// this machine runs; the int8 weights take less memory.
func TestInt8Exact(t *testing.T) {
	c := readCheck(t, microCheck)
	for _, o := range configs() {
		t.Run(o.Kernels+"/"+o.Activations, func(t *testing.T) {
			isa, _ := kernels.ParseISA(o.Kernels)
			if err := isa.Check(); err != nil {
				t.Skipf("kernels %s not run on this machine: %v", o.Kernels, err)
			}
			b16 := newMicro(t, o, true)
			o.Weights = "int8"
			i8 := newMicro(t, o, true)
			if i8.Weights() != WeightsInt8 || b16.Weights() != WeightsBF16 {
				t.Fatalf("weights %q and %q, want int8 and bf16", i8.Weights(), b16.Weights())
			}
			if i8.PackedBytes() >= b16.PackedBytes() {
				t.Fatalf("int8 weights hold %d bytes, bf16 %d", i8.PackedBytes(), b16.PackedBytes())
			}
			got, want := decodeStaggered(t, i8, c), decodeStaggered(t, b16, c)
			for s := range want {
				if len(got[s]) != len(want[s]) {
					t.Fatalf("sequence %d: %d logits with int8, %d with bf16", s, len(got[s]), len(want[s]))
				}
				for k := range want[s] {
					if math.Float32bits(got[s][k]) != math.Float32bits(want[s][k]) {
						t.Fatalf("sequence %d logit %d: %g with int8 weights, %g with bf16", s, k, got[s][k], want[s][k])
					}
				}
			}
		})
	}
}

// TestInt8Cosine: on unrounded weights, int8 weights stay close to bf16
// weights (both fp32 activations) over the check decode of the committed
// micro fixture and of the whisper-base-shaped fixture when present (make
// hf-fixture-base; seeded random weights); the worst row's cosine and the
// argmax changes are logged.
func TestInt8Cosine(t *testing.T) {
	for _, f := range []struct{ name, dir, check string }{
		{"micro", microDir, microCheck},
		{"base", filepath.Join(fixtureCache(), "hf-base"), filepath.Join(fixtureCache(), "hf-base", "check")},
	} {
		t.Run(f.name, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(f.check, "decoder.json")); err != nil {
				t.Skipf("no fixture in %s (make hf-fixture-%s)", f.dir, f.name)
			}
			c := readCheck(t, f.check)
			for _, act := range []string{"fp32", "auto"} {
				int8Cosine(t, f.name, f.dir, c, Options{Activations: act, Threads: 2})
			}
		})
	}
}

// int8Cosine decodes c with int8 and bf16 weights under o and compares.
func int8Cosine(t *testing.T, name, dir string, c check, o Options) {
	b16 := newModel(t, dir, o, false)
	o.Weights = "int8"
	i8 := newModel(t, dir, o, false)
	got, want := decodeStaggered(t, i8, c), decodeStaggered(t, b16, c)
	v := b16.Config().Vocab
	minCos, flips, rows := 1.0, 0, 0
	for s := range want {
		for r := 0; r < len(want[s])/v; r++ {
			cos, same := cosine(got[s][r*v:(r+1)*v], want[s][r*v:(r+1)*v])
			minCos = math.Min(minCos, cos)
			if !same {
				flips++
			}
			rows++
		}
	}
	t.Logf("%s fixture, int8 vs bf16 weights (%s): %d logit rows, min cosine %.6f, argmax differs in %d; packed %.1f vs %.1f MB",
		name, i8.Backend(), rows, minCos, flips, float64(i8.PackedBytes())/1e6, float64(b16.PackedBytes())/1e6)
	if minCos < 0.999 {
		t.Fatalf("%s: int8 vs bf16 weights: min logit cosine %.6f < 0.999", i8.Backend(), minCos)
	}
}

// cosine is the cosine of two logit rows and whether their argmax agrees.
func cosine(a, b []float32) (float64, bool) {
	var dot, aa, bb float64
	ia, ib := 0, 0
	for k := range a {
		x, y := float64(a[k]), float64(b[k])
		dot, aa, bb = dot+x*y, aa+x*x, bb+y*y
		if a[k] > a[ia] {
			ia = k
		}
		if b[k] > b[ib] {
			ib = k
		}
	}
	return dot / math.Sqrt(aa*bb), ia == ib
}

// TestWeightsOption: a bad storage name is refused with an error naming
// the accepted ones; names are case-insensitive.
func TestWeightsOption(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Weights: "fp8"}, `weights "fp8", want bf16 or int8`},
	} {
		_, _, _, err := tc.o.resolve()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one containing %q", tc.o, err, tc.want)
		}
	}
	if _, act, w, err := (Options{Weights: "INT8", Activations: "fp32"}).resolve(); err != nil || act.String() != "fp32" || w != WeightsInt8 {
		t.Errorf("weights INT8: activations %v, weights %q, error %v; want fp32, int8", act, w, err)
	}
}
