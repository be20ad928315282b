package kernels

import (
	"math/rand/v2"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
)

// TestMatVecF32: the one-row product equals MatMulF32's row bit for bit
// (same products, same order) at every ISA this machine runs, with and
// without accumulation and bias, for widths with partial panels and odd K.
func TestMatVecF32(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for isa := Portable; isa <= Detect(); isa++ {
		for _, sh := range []struct{ n, k int }{{256, 64}, {64, 256}, {220, 64}, {16, 7}, {33, 1}, {1500, 64}} {
			w := make([]uint16, sh.n*sh.k)
			for i := range w {
				w[i] = bf16.FromFloat32FTZ(float32(r.NormFloat64()))
			}
			var b Packed
			if err := PackBF16(&b, w, sh.n, sh.k, sh.k); err != nil {
				t.Fatal(err)
			}
			a := make([]float32, b.KP)
			for i := range sh.k {
				a[i] = float32(r.NormFloat64())
			}
			bias := make([]float32, sh.n)
			for i := range bias {
				bias[i] = float32(r.NormFloat64())
			}
			for _, acc := range []bool{false, true} {
				for _, bb := range [][]float32{nil, bias} {
					want, got := make([]float32, sh.n+1), make([]float32, sh.n+1)
					for i := range want {
						want[i] = float32(r.NormFloat64())
						got[i] = want[i]
					}
					var s Scratch
					if err := isa.MatMulF32(want, sh.n, a, b.KP, 1, &b, bb, acc, &s); err != nil {
						t.Fatal(err)
					}
					if err := isa.MatVecF32(got[:sh.n], a, &b, bb, acc, &s); err != nil {
						t.Fatal(err)
					}
					for i := range want {
						if got[i] != want[i] {
							t.Fatalf("%s [%d %d] accumulate %v bias %v: column %d = %g, MatMulF32 gives %g", isa, sh.n, sh.k, acc, bb != nil, i, got[i], want[i])
						}
					}
				}
			}
		}
	}
}
