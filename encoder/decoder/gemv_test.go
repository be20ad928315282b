package decoder

import (
	"math/rand/v2"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/kernels"
)

// TestGEMV: the one-row product equals the AVX2 GEMM's row bit for bit
// (same products, same order), with and without accumulation, for widths
// with partial panels and odd K.
func TestGEMV(t *testing.T) {
	if !haveGEMV(kernels.Detect()) {
		t.Skip("no AVX2 assembly in this build or on this CPU")
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, sh := range []struct{ n, k int }{{256, 64}, {64, 256}, {220, 64}, {16, 7}, {33, 1}, {1500, 64}} {
		w := make([]uint16, sh.n*sh.k)
		for i := range w {
			w[i] = kernels.BF16(float32(r.NormFloat64()))
		}
		var b kernels.Packed
		if err := kernels.PackBF16(&b, w, sh.n, sh.k, sh.k); err != nil {
			t.Fatal(err)
		}
		a := make([]float32, b.KP)
		for i := range sh.k {
			a[i] = float32(r.NormFloat64())
		}
		width := b.Panels() * kernels.PanelCols
		for _, acc := range []bool{false, true} {
			want, got := make([]float32, width), make([]float32, width)
			for i := range want {
				want[i] = float32(r.NormFloat64())
				got[i] = want[i]
			}
			var s kernels.Scratch
			if err := kernels.AVX2.MatMulF32(want, width, a, b.KP, 1, &b, nil, acc, &s); err != nil {
				t.Fatal(err)
			}
			gemv(got, a, &b, acc)
			for i := range sh.n {
				if got[i] != want[i] {
					t.Fatalf("[%d %d] accumulate %v: column %d = %g, GEMM gives %g", sh.n, sh.k, acc, i, got[i], want[i])
				}
			}
		}
	}
}
