package kernels

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestPackFromF32 checks the rounding packers against PackBF16 of the
// rounded matrix (and of its transpose), and PackF32T against PackF32.
func TestPackFromF32(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, sh := range []struct{ n, k int }{{1, 1}, {5, 3}, {32, 64}, {33, 65}, {70, 9}, {64, 1500}} {
		ld := sh.k + 3
		src := randSlice(r, sh.n*ld, 1)
		rounded := make([]uint16, sh.n*sh.k)
		trans := make([]float32, sh.k*sh.n) // srcᵀ [k][n]
		for i := range sh.n {
			for j := range sh.k {
				rounded[i*sh.k+j] = BF16(src[i*ld+j])
				trans[j*sh.n+i] = src[i*ld+j]
			}
		}
		var want Packed
		if err := PackBF16(&want, rounded, sh.n, sh.k, sh.k); err != nil {
			t.Fatal(err)
		}
		for _, isa := range isas() {
			t.Run(fmt.Sprintf("%s/n%d_k%d", isa, sh.n, sh.k), func(t *testing.T) {
				// Reused buffers full of garbage: the packers must not rely on zeroed memory.
				garbage := func() Packed {
					g := make([]uint16, 2*PackedLen(BF16Pairs, sh.n, sh.k))
					for i := range g {
						g[i] = 0xffff
					}
					return Packed{BF16: g[:1]}
				}
				got, gotT := garbage(), garbage()
				if err := isa.PackBF16FromF32(&got, src, sh.n, sh.k, ld); err != nil {
					t.Fatal(err)
				}
				if err := isa.PackBF16FromF32T(&gotT, trans, sh.n, sh.k, sh.n); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got.BF16, want.BF16) || !slices.Equal(gotT.BF16, want.BF16) {
					t.Fatal("packed bf16 differs from PackBF16 of the rounded matrix")
				}
			})
		}
		var f, fT Packed
		if err := PackF32(&f, src, sh.n, sh.k, ld); err != nil {
			t.Fatal(err)
		}
		if err := PackF32T(&fT, trans, sh.n, sh.k, sh.n); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(f.F32, fT.F32) {
			t.Fatalf("n%d k%d: PackF32T differs from PackF32", sh.n, sh.k)
		}
	}
	if err := Portable.PackBF16FromF32(&Packed{}, make([]float32, 5), 2, 3, 3); err == nil {
		t.Fatal("short source accepted")
	}
}
