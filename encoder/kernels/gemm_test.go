package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"

	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
)

// isas lists every ISA this machine can run, so forced lower paths are
// tested even where AVX-512 exists.
func isas() []ISA {
	var out []ISA
	for i := Portable; i <= Detect(); i++ {
		out = append(out, i)
	}
	return out
}

type gemmShape struct{ m, n, k int }

var gemmShapes = []gemmShape{
	{1, 1, 1}, {1, 32, 2}, {14, 32, 64}, {6, 16, 8}, {15, 33, 65}, {7, 5, 3},
	{29, 70, 513}, {3, 600, 300}, {50, 17, 1030}, {28, 64, 1100}, {1, 100, 77}, {15, 2100, 40},
}

func randSlice(r *rand.Rand, n int, scale float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64() * scale)
	}
	return s
}

// refGemm is C = A·Bᵀ + bias + c0 in float64, and Σ|a·b| per output for the tolerance.
func refGemm(a []float64, b []float64, bias, c0 []float32, m, n, k int) (ref, mag []float64) {
	ref, mag = make([]float64, m*n), make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			s, t := 0.0, 0.0
			for l := 0; l < k; l++ {
				p := a[i*k+l] * b[j*k+l]
				s += p
				t += math.Abs(p)
			}
			if bias != nil {
				s += float64(bias[j])
				t += math.Abs(float64(bias[j]))
			}
			if c0 != nil {
				s += float64(c0[i*n+j])
				t += math.Abs(float64(c0[i*n+j]))
			}
			ref[i*n+j], mag[i*n+j] = s, t
		}
	}
	return ref, mag
}

func checkClose(t *testing.T, got []float32, ldc int, ref, mag []float64, m, n int, rtol float64) {
	t.Helper()
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			g, w := float64(got[i*ldc+j]), ref[i*n+j]
			if d := math.Abs(g - w); d > rtol*mag[i*n+j]+1e-30 || math.IsNaN(g) {
				t.Fatalf("C[%d][%d] = %g, want %g (|Δ| %.3g > %.3g)", i, j, g, w, d, rtol*mag[i*n+j])
			}
		}
	}
}

func TestMatMul(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, sh := range gemmShapes {
		for _, variant := range []string{"bf16", "f32·bf16", "f32·f32"} {
			for _, withBias := range []bool{false, true} {
				for _, accum := range []bool{false, true} {
					name := fmt.Sprintf("%s/m%d_n%d_k%d/bias=%v/accum=%v", variant, sh.m, sh.n, sh.k, withBias, accum)
					t.Run(name, func(t *testing.T) { testMatMul(t, r, variant, sh, withBias, accum) })
				}
			}
		}
	}
}

func testMatMul(t *testing.T, r *rand.Rand, variant string, sh gemmShape, withBias, accum bool) {
	m, n, k := sh.m, sh.n, sh.k
	kp := (k + 1) &^ 1
	w := randSlice(r, n*k, 1)
	wb := make([]uint16, n*k)
	for i, v := range w {
		wb[i] = bf16.FromFloat32FTZ(v)
	}
	a32 := randSlice(r, m*kp, 1)
	for i := 0; i < m; i++ {
		for l := k; l < kp; l++ {
			a32[i*kp+l] = 0
		}
	}
	var bias []float32
	if withBias {
		bias = randSlice(r, n, 1)
	}
	ldc := n + 3
	c0 := randSlice(r, m*ldc, 1)
	var c0ref []float32
	if accum {
		c0ref = make([]float32, m*n)
		for i := 0; i < m; i++ {
			copy(c0ref[i*n:(i+1)*n], c0[i*ldc:])
		}
	}
	// Reference operands: what the kernel actually multiplies.
	a64, b64 := make([]float64, m*k), make([]float64, n*k)
	ab := make([]uint16, m*kp)
	for i := 0; i < m; i++ {
		for l := 0; l < kp; l++ {
			ab[i*kp+l] = bf16.FromFloat32FTZ(a32[i*kp+l])
			if l < k {
				if variant == "bf16" {
					a64[i*k+l] = float64(bf16.ToFloat32(ab[i*kp+l]))
				} else {
					a64[i*k+l] = float64(a32[i*kp+l])
				}
			}
		}
	}
	var pk Packed
	for i := range b64 {
		if variant == "f32·f32" {
			b64[i] = float64(w[i])
		} else {
			b64[i] = float64(bf16.ToFloat32(wb[i]))
		}
	}
	if variant == "f32·f32" {
		if err := PackF32(&pk, w, n, k, k); err != nil {
			t.Fatal(err)
		}
	} else if err := PackBF16(&pk, wb, n, k, k); err != nil {
		t.Fatal(err)
	}
	ref, mag := refGemm(a64, b64, bias, c0ref, m, n, k)
	for _, isa := range isas() {
		if variant == "bf16" && isa != Portable && isa != AVX512BF16 {
			continue
		}
		c := append([]float32(nil), c0...)
		var s Scratch
		var err error
		if variant == "bf16" {
			err = isa.MatMulBF16(c, ldc, ab, kp, m, &pk, bias, accum, &s)
		} else {
			err = isa.MatMulF32(c, ldc, a32, kp, m, &pk, bias, accum, &s)
		}
		if err != nil {
			t.Fatalf("%s: %v", isa, err)
		}
		t.Run(isa.String(), func(t *testing.T) { checkClose(t, c, ldc, ref, mag, m, n, 2e-6) })
		// The padding columns of C between N and ldc are untouched.
		for i := 0; i < m; i++ {
			for j := n; j < ldc; j++ {
				if c[i*ldc+j] != c0[i*ldc+j] {
					t.Fatalf("%s: wrote C[%d][%d] beyond N", isa, i, j)
				}
			}
		}
	}
}

func TestMatMulErrors(t *testing.T) {
	var pk Packed
	if err := PackBF16(&pk, make([]uint16, 4*6), 4, 6, 6); err != nil {
		t.Fatal(err)
	}
	var s Scratch
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"short A", func() error {
			return Portable.MatMulBF16(make([]float32, 8), 4, make([]uint16, 11), 6, 2, &pk, nil, false, &s)
		}, "A holds 11"},
		{"negative lda", func() error {
			return Portable.MatMulBF16(make([]float32, 8), 4, make([]uint16, 12), -1, 2, &pk, nil, false, &s)
		}, "row stride -1"},
		{"short C", func() error {
			return Portable.MatMulBF16(make([]float32, 7), 4, make([]uint16, 12), 6, 2, &pk, nil, false, &s)
		}, "C holds 7"},
		{"short bias", func() error {
			return Portable.MatMulBF16(make([]float32, 8), 4, make([]uint16, 12), 6, 2, &pk, make([]float32, 3), false, &s)
		}, "bias has 3"},
		{"bf16 on avx2", func() error {
			return AVX2.MatMulBF16(make([]float32, 8), 4, make([]uint16, 12), 6, 2, &pk, nil, false, &s)
		}, "bf16 activations need"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// TestExactRowKernels: a partial row tile run by its exact-row kernel gives
// the same C, bit for bit, as the full tile on a zero-padded copy (the
// kernels share the per-row instruction sequence), for every row count
// below the tile height and a tile plus each of them.
func TestExactRowKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n, k = 70, 131 // a partial panel and an odd K
	kp := (k + 1) &^ 1
	wb := make([]uint16, n*k)
	for i, v := range randSlice(r, n*k, 1) {
		wb[i] = bf16.FromFloat32FTZ(v)
	}
	var pk Packed
	if err := PackBF16(&pk, wb, n, k, k); err != nil {
		t.Fatal(err)
	}
	bias := randSlice(r, n, 1)
	type variant struct {
		name string
		mk   micro
		a    unsafe.Pointer
	}
	const maxM = 2*maxMR - 1
	a32 := randSlice(r, maxM*kp, 1)
	a16 := make([]uint16, len(a32))
	for i := range a32 {
		if i%kp >= k {
			a32[i] = 0
		}
		a16[i] = bf16.FromFloat32FTZ(a32[i])
	}
	for _, isa := range isas() {
		var vs []variant
		if mk, err := isa.microBF16(); err == nil {
			vs = append(vs, variant{"bf16", mk, unsafe.Pointer(&a16[0])})
		}
		vs = append(vs, variant{"f32·bf16", isa.microF32(BF16Pairs), unsafe.Pointer(&a32[0])})
		for _, v := range vs {
			if v.mk.rows == nil {
				continue // Portable pads partial tiles: nothing to compare
			}
			exact, padded := v.mk, v.mk
			padded.rows = nil
			for m := 1; m <= maxM; m++ {
				if m%v.mk.mr == 0 {
					continue
				}
				for _, accum := range []bool{false, true} {
					c0 := randSlice(r, m*n, 1)
					got, want := append([]float32(nil), c0...), append([]float32(nil), c0...)
					var s Scratch
					drive(exact, got, n, v.a, kp, m, &pk, unsafe.Pointer(&pk.BF16[0]), bias, accum, &s)
					drive(padded, want, n, v.a, kp, m, &pk, unsafe.Pointer(&pk.BF16[0]), bias, accum, &s)
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("%s %s m=%d accum=%v: C[%d][%d] = %g exact-row, %g padded", isa, v.name, m, accum, i/n, i%n, got[i], want[i])
						}
					}
				}
			}
		}
	}
}
