package backend

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
)

// TestLinearCols: the column-block split computes every output exactly as
// the row-block Linear does (same kernels, same k order), with and without
// LayerNorm, bias and accumulation, for widths with partial panels.
func TestLinearCols(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, c := range backends(t) {
		for _, sh := range []struct{ rows, in, out int }{{1, 64, 1864}, {3, 64, 64}, {7, 96, 33}, {32, 128, 513}, {1, 7, 5}} {
			wb, _ := randBF16(r, sh.out*sh.in, 0.1)
			w, err := c.Pack(wb, sh.out, sh.in)
			if err != nil {
				t.Fatal(err)
			}
			x := randF32(r, sh.rows*sh.in, 1)
			bias := randF32(r, sh.out, 0.1)
			norm := &Norm{Weight: randF32(r, sh.in, 1), Bias: randF32(r, sh.in, 0.1), Eps: 1e-5}
			for _, n := range []*Norm{nil, norm} {
				for _, acc := range []bool{false, true} {
					init := randF32(r, sh.rows*sh.out, 1)
					want, got := append([]float32(nil), init...), append([]float32(nil), init...)
					src := Mat{Data: x, Rows: sh.rows, Cols: sh.in, Stride: sh.in}
					if err := c.Linear(Mat{Data: want, Rows: sh.rows, Cols: sh.out, Stride: sh.out}, src, n, w, bias, acc); err != nil {
						t.Fatal(err)
					}
					if err := c.LinearCols(Mat{Data: got, Rows: sh.rows, Cols: sh.out, Stride: sh.out}, src, n, w, bias, acc); err != nil {
						t.Fatal(err)
					}
					for i := range want {
						if got[i] != want[i] {
							t.Fatalf("%s %v norm %v acc %v: [%d] = %g, Linear gives %g", c.Name(), sh, n != nil, acc, i, got[i], want[i])
						}
					}
				}
			}
		}
	}
}

// TestRows: rows gathered out of a packed weight are the source rows.
func TestRows(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	c := backends(t)[0]
	for _, sh := range []struct{ out, in int }{{1864, 64}, {45, 7}, {33, 2}} {
		wb, _ := randBF16(r, sh.out*sh.in, 1)
		w, err := c.Pack(wb, sh.out, sh.in)
		if err != nil {
			t.Fatal(err)
		}
		ids := []int{0, sh.out - 1, sh.out / 2, 31 % sh.out, 32 % sh.out}
		dst := make([]float32, len(ids)*sh.in)
		if err := c.Rows(Mat{Data: dst, Rows: len(ids), Cols: sh.in, Stride: sh.in}, w, ids); err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			for k := range sh.in {
				if want := bf16.ToFloat32(wb[id*sh.in+k]); dst[i*sh.in+k] != want {
					t.Fatalf("%v row %d [%d] = %g, want %g", sh, id, k, dst[i*sh.in+k], want)
				}
			}
		}
		err = c.Rows(Mat{Data: dst[:sh.in], Rows: 1, Cols: sh.in, Stride: sh.in}, w, []int{sh.out})
		if err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Fatalf("row %d of %d: error %v, want out of range", sh.out, sh.out, err)
		}
	}
}
