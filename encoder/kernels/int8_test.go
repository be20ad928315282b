package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
)

// int8Row is a random row whose magnitude spans many binades, with the
// edge cases of the scale rule planted: zeros, a maximum exactly 127·2^e,
// one just above it, and values far below a normal scale.
func int8Row(r *rand.Rand, k int) []float32 {
	row := make([]float32, k)
	scale := math.Ldexp(1, r.IntN(40)-30)
	switch r.IntN(6) {
	case 0: // all zero
	case 1: // max exactly 127·2^e
		for i := range row {
			row[i] = float32(float64(r.IntN(255)-127) * scale)
		}
		row[r.IntN(k)] = float32(127 * scale)
	case 2: // just above 127·2^e: the next binade's scale
		for i := range row {
			row[i] = float32(r.NormFloat64() * scale)
		}
		row[r.IntN(k)] = -math.Nextafter32(float32(127*scale), 1e30)
	case 3: // subnormal-sized values: the scale clamps to 2^-126
		for i := range row {
			row[i] = float32(r.NormFloat64() * 1e-40)
		}
	default:
		for i := range row {
			row[i] = float32(r.NormFloat64() * scale)
		}
	}
	return row
}

// TestQuantizeInt8 checks the scale rule (the smallest power of two e with
// 127·2^e ≥ max|w|, a normal float32), the range of q, that q·s is exactly
// a bf16, the rounding error (at most s/2), and that requantising q·s is
// the identity.
func TestQuantizeInt8(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	for it := range 2000 {
		k := 1 + r.IntN(70)
		row := int8Row(r, k)
		q := make([]int8, k)
		s, err := QuantizeInt8(q, row)
		if err != nil {
			t.Fatal(err)
		}
		var m float64
		for _, v := range row {
			m = max(m, math.Abs(float64(v)))
		}
		frac, e := math.Frexp(float64(s))
		e--
		switch {
		case frac != 0.5 || e < -126:
			t.Fatalf("row %d: scale %g is not a normal power of two", it, s)
		case 127*float64(s) < m:
			t.Fatalf("row %d: 127·%g < max|w| %g", it, s, m)
		case e > -126 && m > 0 && 127*float64(s)/2 >= m:
			t.Fatalf("row %d: scale %g is not the smallest (max|w| %g)", it, s, m)
		case m == 0 && s != 1:
			t.Fatalf("row %d: all-zero row has scale %g, want 1", it, s)
		}
		deq := make([]float32, k)
		for i, v := range q {
			if v == -128 {
				t.Fatalf("row %d: q[%d] = -128", it, i)
			}
			deq[i] = float32(v) * s
			if got := bf16.ToFloat32(bf16.FromFloat32FTZ(deq[i])); got != deq[i] {
				t.Fatalf("row %d: q·s = %g is not a bf16 (rounds to %g)", it, deq[i], got)
			}
			if d := math.Abs(float64(deq[i]) - float64(row[i])); d > float64(s)/2 {
				t.Fatalf("row %d: |q·s − w| = %g > s/2 (w %g, s %g)", it, d, row[i], s)
			}
		}
		q2 := make([]int8, k)
		s2, err := QuantizeInt8(q2, deq)
		if err != nil {
			t.Fatal(err)
		}
		if s2 != s && !(slicesZero(q) && s2 == 1) {
			t.Fatalf("row %d: requantised scale %g, want %g", it, s2, s)
		}
		for i := range q {
			if q2[i] != q[i] {
				t.Fatalf("row %d: requantised q[%d] = %d, want %d", it, i, q2[i], q[i])
			}
		}
	}
	if _, err := QuantizeInt8(make([]int8, 2), []float32{1, float32(math.Inf(1))}); err == nil {
		t.Fatal("an infinite weight quantised without an error")
	}
}

func slicesZero(q []int8) bool {
	for _, v := range q {
		if v != 0 {
			return false
		}
	}
	return true
}

// int8Pair packs a random [n][k] weight as Int8Cols and the dequantised
// weights q·s as BF16Pairs.
func int8Pair(t *testing.T, r *rand.Rand, n, k int) (i8, b16 Packed) {
	t.Helper()
	w := make([]uint16, n*k)
	for i := range n {
		for j, v := range int8Row(r, k) {
			w[i*k+j] = bf16.FromFloat32FTZ(v)
		}
	}
	if err := PackInt8(&i8, w, n, k, k); err != nil {
		t.Fatal(err)
	}
	deq := make([]uint16, n*k)
	row := make([]float32, k)
	for i := range n {
		if err := i8.RowF32(row, i); err != nil {
			t.Fatal(err)
		}
		for j, v := range row {
			deq[i*k+j] = bf16.FromFloat32FTZ(v)
		}
	}
	if err := PackBF16(&b16, deq, n, k, k); err != nil {
		t.Fatal(err)
	}
	return i8, b16
}

// TestMatMulInt8: the int8 GEMMs equal MatMulF32 (and MatMulBF16, at the
// ISAs with bf16 activations) on the BF16Pairs packing of the dequantised
// weights bit for bit, at every ISA this machine runs, for every row count
// 1..33, odd K, partial panels, bias and accumulation, and leave the C
// columns past N alone.
func TestMatMulInt8(t *testing.T) {
	r := rand.New(rand.NewPCG(43, 44))
	for _, sh := range []struct{ n, k int }{{32, 64}, {33, 7}, {70, 65}, {100, 1030}, {5, 1}, {64, 2}} {
		i8, b16 := int8Pair(t, r, sh.n, sh.k)
		for _, isa := range isas() {
			for m := 1; m <= 33; m++ {
				t.Run(fmt.Sprintf("%s/m%d_n%d_k%d", isa, m, sh.n, sh.k), func(t *testing.T) {
					testMatMulInt8(t, r, isa, m, &i8, &b16)
				})
			}
		}
	}
}

func testMatMulInt8(t *testing.T, r *rand.Rand, isa ISA, m int, i8, b16 *Packed) {
	n, kp := i8.N, i8.KP
	lda, ldc := kp+3, n+5
	a := randSlice(r, m*lda, 1)
	for i := range m {
		for l := i8.K; l < kp; l++ {
			a[i*lda+l] = 0
		}
	}
	a16 := make([]uint16, len(a))
	Portable.ToBF16(a16, a)
	bias := randSlice(r, n, 1)
	var s Scratch
	type gemm func(c []float32, b *Packed, bias []float32, acc bool) error
	acts := map[string]gemm{"fp32": func(c []float32, b *Packed, bias []float32, acc bool) error {
		return isa.MatMulF32(c, ldc, a, lda, m, b, bias, acc, &s)
	}}
	if isa == Portable || isa >= AVX512BF16 {
		acts["bf16"] = func(c []float32, b *Packed, bias []float32, acc bool) error {
			return isa.MatMulBF16(c, ldc, a16, lda, m, b, bias, acc, &s)
		}
	}
	for act, mul := range acts {
		for _, bb := range [][]float32{nil, bias} {
			for _, acc := range []bool{false, true} {
				want, got := randSlice(r, m*ldc, 1), make([]float32, m*ldc)
				copy(got, want)
				if err := mul(want, b16, bb, acc); err != nil {
					t.Fatal(err)
				}
				if err := mul(got, i8, bb, acc); err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s activations, bias %v accumulate %v: C[%d][%d] = %g, bf16 weights give %g", act, bb != nil, acc, i/ldc, i%ldc, got[i], want[i])
					}
				}
			}
		}
	}
}

// TestPackedCols: a view of some panels multiplies like those columns of
// the whole matrix, for each format.
func TestPackedCols(t *testing.T) {
	r := rand.New(rand.NewPCG(45, 46))
	i8, b16 := int8Pair(t, r, 100, 33)
	var f32 Packed
	if err := PackF32(&f32, randSlice(r, 100*33, 1), 100, 33, 33); err != nil {
		t.Fatal(err)
	}
	a := randSlice(r, 34, 1)
	a[33] = 0
	for _, p := range []*Packed{&i8, &b16, &f32} {
		whole := make([]float32, p.N)
		if err := Detect().MatMulF32(whole, p.N, a, 34, 1, p, nil, false, &Scratch{}); err != nil {
			t.Fatal(err)
		}
		sub := p.Cols(1, 4)
		if sub.N != 100-32 {
			t.Fatalf("format %d: view of panels 1..4 has %d columns, want 68", p.Format, sub.N)
		}
		part := make([]float32, sub.N)
		if err := Detect().MatMulF32(part, sub.N, a, 34, 1, &sub, nil, false, &Scratch{}); err != nil {
			t.Fatal(err)
		}
		for j, v := range part {
			if v != whole[32+j] {
				t.Fatalf("format %d: view column %d = %g, whole matrix gives %g", p.Format, j, v, whole[32+j])
			}
		}
	}
}

// TestRoundInt8BF16: rounding a bf16 row to its grid gives exactly the
// weights PackInt8 stores.
func TestRoundInt8BF16(t *testing.T) {
	r := rand.New(rand.NewPCG(47, 48))
	for range 200 {
		k := 1 + r.IntN(90)
		w := make([]uint16, k)
		for j, v := range int8Row(r, k) {
			w[j] = bf16.FromFloat32FTZ(v)
		}
		var p Packed
		if err := PackInt8(&p, w, 1, k, k); err != nil {
			t.Fatal(err)
		}
		if err := RoundInt8BF16(w, make([]float32, k)); err != nil {
			t.Fatal(err)
		}
		row := make([]float32, k)
		if err := p.RowF32(row, 0); err != nil {
			t.Fatal(err)
		}
		for j, v := range w {
			if bf16.ToFloat32(v) != row[j] {
				t.Fatalf("k %d: rounded w[%d] = %g, packed q·s = %g", k, j, bf16.ToFloat32(v), row[j])
			}
		}
	}
}
