package kernels

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
)

// TestPut fills packed matrices row by row and column by column in uneven
// chunks (odd starts split k-pairs) and compares them with the whole-matrix
// packers.
func TestPut(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	for _, sh := range []struct{ n, k int }{{1, 1}, {5, 3}, {32, 64}, {33, 65}, {64, 250}, {70, 9}, {40, 18}, {3, 10}, {17, 32}} {
		ld := sh.k + 2
		src := randSlice(r, sh.n*ld, 1)     // B [n][k]
		trans := make([]float32, sh.k*sh.n) // Bᵀ [k][n]
		for i := range sh.n {
			for j := range sh.k {
				trans[j*sh.n+i] = src[i*ld+j]
			}
		}
		rounded := make([]uint16, sh.n*sh.k)
		for i := range sh.n {
			for j := range sh.k {
				rounded[i*sh.k+j] = bf16.FromFloat32FTZ(src[i*ld+j])
			}
		}
		var want16, want32 Packed
		if err := PackBF16(&want16, rounded, sh.n, sh.k, sh.k); err != nil {
			t.Fatal(err)
		}
		if err := PackF32(&want32, src, sh.n, sh.k, ld); err != nil {
			t.Fatal(err)
		}
		chunks := func(total int) [][2]int { // [start, count) pieces of sizes 1, 2, 3, 5, 8, ...
			var out [][2]int
			for s, c, d := 0, 1, 2; s < total; s, c, d = s+c, d, c+d {
				out = append(out, [2]int{s, min(c, total-s)})
			}
			return out
		}
		for _, isa := range isas() {
			t.Run(fmt.Sprintf("%s/n%d_k%d", isa, sh.n, sh.k), func(t *testing.T) {
				var rows, cols Packed
				rows.Resize(BF16Pairs, sh.n, sh.k)
				cols.Resize(BF16Pairs, sh.n, sh.k)
				tmp := make([]uint16, 2*max(sh.n, sh.k))
				for _, c := range chunks(sh.n) {
					if err := isa.PutRowsBF16(&rows, c[0], src[c[0]*ld:], c[1], ld, tmp); err != nil {
						t.Fatal(err)
					}
				}
				for _, c := range chunks(sh.k) {
					if err := isa.PutColsBF16(&cols, c[0], trans[c[0]*sh.n:], c[1], sh.n, tmp); err != nil {
						t.Fatal(err)
					}
				}
				if !slices.Equal(rows.BF16, want16.BF16) || !slices.Equal(cols.BF16, want16.BF16) {
					t.Fatal("bf16 put differs from PackBF16 of the rounded matrix")
				}
			})
		}
		var rows, cols Packed
		rows.Resize(Float32, sh.n, sh.k)
		cols.Resize(Float32, sh.n, sh.k)
		for _, c := range chunks(sh.n) {
			if err := PutRowsF32(&rows, c[0], src[c[0]*ld:], c[1], ld); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range chunks(sh.k) {
			if err := PutColsF32(&cols, c[0], trans[c[0]*sh.n:], c[1], sh.n); err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Equal(rows.F32, want32.F32) || !slices.Equal(cols.F32, want32.F32) {
			t.Fatalf("n%d k%d: f32 put differs from PackF32", sh.n, sh.k)
		}
	}
	var p Packed
	p.Resize(BF16Pairs, 4, 6)
	if err := Portable.PutRowsBF16(&p, 3, make([]float32, 12), 2, 6, make([]uint16, 6)); err == nil {
		t.Fatal("rows past N accepted")
	}
	if err := PutRowsF32(&p, 0, make([]float32, 6), 1, 6); err == nil {
		t.Fatal("f32 put into a bf16 matrix accepted")
	}
}

// TestPackBF16Layout checks PackBF16 entry by entry against the documented
// layout, on buffers full of garbage.
func TestPackBF16Layout(t *testing.T) {
	for _, sh := range []struct{ n, k int }{{1, 1}, {3, 5}, {33, 64}, {64, 7}} {
		src := make([]uint16, sh.n*sh.k)
		for i := range src {
			src[i] = uint16(i + 1)
		}
		g := make([]uint16, PackedLen(BF16Pairs, sh.n, sh.k))
		for i := range g {
			g[i] = 0xffff
		}
		p := Packed{BF16: g[:0]}
		if err := PackBF16(&p, src, sh.n, sh.k, sh.k); err != nil {
			t.Fatal(err)
		}
		for i, v := range p.BF16 {
			panel, rest := i/(p.KP*PanelCols), i%(p.KP*PanelCols)
			q, c, j := rest/(2*PanelCols), rest%(2*PanelCols)/2, rest%2
			n, k := panel*PanelCols+c, 2*q+j
			want := uint16(0)
			if n < sh.n && k < sh.k {
				want = src[n*sh.k+k]
			}
			if v != want {
				t.Fatalf("n%d k%d: packed[%d] (B[%d][%d]) = %d, want %d", sh.n, sh.k, i, n, k, v, want)
			}
		}
	}
}
