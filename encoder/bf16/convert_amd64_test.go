//go:build amd64 && !purego

package bf16

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The AVX-512 loop and the scalar loop agree: the same bfloat16 bits, the same
// counts and max error, and error sums equal to rounding (they add in another order).
func TestVectorLoopMatchesScalar(t *testing.T) {
	if !useAVX512 {
		t.Skip("no AVX-512 on this CPU")
	}
	r := rand.New(rand.NewPCG(11, 12))
	edge := []float32{
		0, float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32,
		math.Float32frombits(0x007fffff), math.Float32frombits(0x3f808000), math.Float32frombits(0x3f818000), // subnormal, ties
		math.MaxFloat32, -math.MaxFloat32, 3.3961776e38, // overflow to ±Inf
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), math.Float32frombits(0xff800001),
	}
	for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 33, 47, 100, 1000, 4099} {
		for _, specials := range []int{0, 1, 5} {
			src := make([]float32, n)
			for i := range src {
				switch r.IntN(4) {
				case 0:
					src[i] = float32(r.NormFloat64() * 1e-3)
				case 1:
					src[i] = math.Float32frombits(r.Uint32() &^ 0x40000000) // any finite bits
				default:
					src[i] = float32(r.NormFloat64())
				}
			}
			for range specials {
				if n > 0 {
					src[r.IntN(n)] = edge[r.IntN(len(edge))]
				}
			}
			le := make([]byte, 4*n)
			for i, x := range src {
				binary.LittleEndian.PutUint32(le[4*i:], math.Float32bits(x))
			}
			got, gotLE, want := make([]uint16, n), make([]uint16, n), make([]uint16, n)
			gs := Convert(got, src)
			gl := ConvertLE(gotLE, le)
			useAVX512 = false
			ws := Convert(want, src)
			useAVX512 = true
			for _, c := range []struct {
				name string
				h    []uint16
				s    ErrorStats
			}{{"Convert", got, gs}, {"ConvertLE", gotLE, gl}} {
				if !slices.Equal(c.h, want) {
					i := 0
					for i = range want {
						if c.h[i] != want[i] {
							break
						}
					}
					t.Fatalf("n=%d %s: value %d (%g) → %#04x, scalar %#04x", n, c.name, i, src[i], c.h[i], want[i])
				}
				if c.s.Count != ws.Count || c.s.NonFinite != ws.NonFinite || c.s.Overflow != ws.Overflow || c.s.MaxAbs != ws.MaxAbs {
					t.Fatalf("n=%d %s: stats %+v, scalar %+v", n, c.name, c.s, ws)
				}
				if !near(c.s.sumSq, ws.sumSq) || !near(c.s.sumSqErr, ws.sumSqErr) {
					t.Fatalf("n=%d %s: sums %g %g, scalar %g %g", n, c.name, c.s.sumSq, c.s.sumSqErr, ws.sumSq, ws.sumSqErr)
				}
			}
		}
	}
}

// near: a and b equal to float64 rounding.
func near(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-12*math.Max(math.Abs(a), math.Abs(b))
}

// BenchmarkConvertLoops compares the vector and scalar loops on one tensor.
func BenchmarkConvertLoops(b *testing.B) {
	src := make([]float32, 1<<20)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range src {
		src[i] = float32(r.NormFloat64())
	}
	dst := make([]uint16, len(src))
	for _, vec := range []bool{true, false} {
		name := map[bool]string{true: "avx512", false: "scalar"}[vec]
		b.Run(name, func(b *testing.B) {
			if vec && !useAVX512 {
				b.Skip("no AVX-512")
			}
			defer func(v bool) { useAVX512 = v }(useAVX512)
			useAVX512 = vec
			b.SetBytes(int64(4 * len(src)))
			for b.Loop() {
				Convert(dst, src)
			}
		})
	}
}
