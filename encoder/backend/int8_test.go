package backend

import (
	"math/rand/v2"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/kernels"
)

// int8Weights packs a random [out][in] weight as int8 and, rounded to its
// int8 grid, as bf16: the pair must compute the same results bit for bit.
func int8Weights(t *testing.T, c *CPU, r *rand.Rand, out, in int) (i8, b16 Weight) {
	t.Helper()
	wb, _ := randBF16(r, out*in, 0.1)
	i8, err := c.PackInt8(wb, out, in)
	if err != nil {
		t.Fatal(err)
	}
	tmp := make([]float32, in)
	for o := range out {
		if err := kernels.RoundInt8BF16(wb[o*in:(o+1)*in], tmp); err != nil {
			t.Fatal(err)
		}
	}
	b16, err = c.Pack(wb, out, in)
	if err != nil {
		t.Fatal(err)
	}
	panels := (out + 31) / 32
	if want := panels*32*((in+1)&^1) + 4*panels*32; i8.Bytes() != want {
		t.Fatalf("int8 [%d %d] holds %d bytes, want %d", out, in, i8.Bytes(), want)
	}
	return i8, b16
}

func equalBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: [%d] = %g with int8 weights, %g with their bf16 values", what, i, got[i], want[i])
		}
	}
}

// TestInt8Weights: Linear, LinearCols, MLP and Rows on int8 weights equal
// the same operations on bf16 weights holding q·s, at every backend (ISA
// and activation precision) this machine runs.
func TestInt8Weights(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, c := range backends(t) {
		for _, sh := range []struct{ rows, in, out int }{{1, 64, 1864}, {3, 64, 64}, {7, 97, 33}, {20, 128, 513}} {
			i8, b16 := int8Weights(t, c, r, sh.out, sh.in)
			x := randF32(r, sh.rows*sh.in, 1)
			src := Mat{Data: x, Rows: sh.rows, Cols: sh.in, Stride: sh.in}
			bias := randF32(r, sh.out, 0.1)
			norm := &Norm{Weight: randF32(r, sh.in, 1), Bias: randF32(r, sh.in, 0.1), Eps: 1e-5}
			for _, op := range []struct {
				name string
				f    func(c *CPU, dst, src Mat, norm *Norm, w Weight, bias []float32, acc bool) error
			}{{"linear", (*CPU).Linear}, {"linear cols", (*CPU).LinearCols}} {
				init := randF32(r, sh.rows*sh.out, 1)
				want, got := append([]float32(nil), init...), append([]float32(nil), init...)
				dst := func(d []float32) Mat { return Mat{Data: d, Rows: sh.rows, Cols: sh.out, Stride: sh.out} }
				if err := op.f(c, dst(want), src, norm, b16, bias, true); err != nil {
					t.Fatal(err)
				}
				if err := op.f(c, dst(got), src, norm, i8, bias, true); err != nil {
					t.Fatal(err)
				}
				equalBits(t, c.Name()+" "+op.name, got, want)
			}
			ids := []int{0, sh.out - 1, sh.out / 2}
			want, got := make([]float32, len(ids)*sh.in), make([]float32, len(ids)*sh.in)
			rows := func(d []float32) Mat { return Mat{Data: d, Rows: len(ids), Cols: sh.in, Stride: sh.in} }
			if err := c.Rows(rows(want), b16, ids); err != nil {
				t.Fatal(err)
			}
			if err := c.Rows(rows(got), i8, ids); err != nil {
				t.Fatal(err)
			}
			equalBits(t, c.Name()+" rows", got, want)
		}
		f1i, f1b := int8Weights(t, c, r, 256, 64)
		f2i, f2b := int8Weights(t, c, r, 64, 256)
		x := randF32(r, 17*64, 1)
		want, got := append([]float32(nil), x...), append([]float32(nil), x...)
		b1, b2 := randF32(r, 256, 0.1), randF32(r, 64, 0.1)
		m := func(d []float32) Mat { return Mat{Data: d, Rows: 17, Cols: 64, Stride: 64} }
		if err := c.MLP(m(want), m(want), nil, f1b, b1, f2b, b2); err != nil {
			t.Fatal(err)
		}
		if err := c.MLP(m(got), m(got), nil, f1i, b1, f2i, b2); err != nil {
			t.Fatal(err)
		}
		equalBits(t, c.Name()+" mlp", got, want)
	}
}
