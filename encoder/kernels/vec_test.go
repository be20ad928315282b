package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
)

var rowLens = []int{1, 3, 15, 16, 17, 31, 32, 33, 64, 100, 512, 1500}

func TestBF16Conversion(t *testing.T) {
	cases := []struct {
		in   uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // tie, even stays
		{0x3f818000, 0x3f82}, // tie, odd rounds up
		{0x3f80c000, 0x3f81}, // above half
		{0x7f7fffff, 0x7f80}, // max float rounds to +Inf
		{0x00400000, 0x0000}, // denormal flushes
		{0x80400000, 0x8000}, // negative denormal keeps sign
		{0x7fc00001, 0x7fc0}, // NaN stays NaN
		{0x7f800001, 0x7fc0}, // signalling NaN becomes quiet
		{0xff800000, 0xff80}, // -Inf
	}
	for _, isa := range isas() {
		src := make([]float32, 64)
		for i := range src {
			src[i] = math.Float32frombits(cases[i%len(cases)].in)
		}
		dst := make([]uint16, 64)
		isa.ToBF16(dst, src)
		for i, d := range dst {
			if want := cases[i%len(cases)].want; d != want {
				t.Errorf("%s: bf16(%#08x) = %#04x, want %#04x", isa, cases[i%len(cases)].in, d, want)
			}
		}
	}
	// Random values (subnormals among them): every ISA rounds as the one
	// definition, bf16.FromFloat32FTZ, bit for bit.
	r := rand.New(rand.NewPCG(5, 6))
	src := make([]float32, 4096)
	for i := range src {
		b := r.Uint32()
		if i%8 == 0 {
			b &= 0x807fffff // zero exponent: the flush-to-zero case
		}
		src[i] = math.Float32frombits(b)
	}
	for _, isa := range isas() {
		got := make([]uint16, len(src))
		isa.ToBF16(got, src)
		for i := range got {
			if want := bf16.FromFloat32FTZ(src[i]); got[i] != want {
				t.Fatalf("%s: bf16(%#08x) = %#04x, bf16.FromFloat32FTZ %#04x", isa, math.Float32bits(src[i]), got[i], want)
			}
		}
	}
}

func geluRef(x float64) float64 { return 0.5 * x * math.Erfc(-x/math.Sqrt2) }

func TestGELU(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, n := range rowLens {
		src := randSlice(r, n, 3)
		edge := []float32{0, -0, 1e-30, -1e-30, 8, -8, 12, -12, 40, -40, 0.5, -0.5}
		copy(src, edge)
		for _, isa := range isas() {
			t.Run(fmt.Sprintf("%s/n%d", isa, n), func(t *testing.T) {
				d32 := make([]float32, n+1)
				isa.GELU(d32[:n], src)
				d16 := make([]uint16, n+1)
				isa.GELUBF16(d16[:n], src)
				for i, v := range src {
					ref := geluRef(float64(v))
					tol := 3e-7*math.Abs(float64(v)) + 1e-30
					if e := math.Abs(float64(d32[i]) - ref); e > tol {
						t.Fatalf("gelu(%g) = %g, want %g (|Δ| %.3g)", v, d32[i], ref, e)
					}
					if e := math.Abs(float64(bf16.ToFloat32(d16[i])) - ref); e > math.Abs(ref)/256+tol {
						t.Fatalf("bf16 gelu(%g) = %g, want %g", v, bf16.ToFloat32(d16[i]), ref)
					}
				}
				if d32[n] != 0 || d16[n] != 0 {
					t.Fatal("wrote past n")
				}
				// In place.
				in := append([]float32(nil), src...)
				isa.GELU(in, in)
				for i := range in {
					if in[i] != d32[i] {
						t.Fatalf("in-place gelu differs at %d", i)
					}
				}
			})
		}
	}
}

func TestScale(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, n := range rowLens {
		src := randSlice(r, n, 2)
		for _, isa := range isas() {
			d32 := make([]float32, n+1)
			isa.Scale(d32[:n], src, 0.37)
			d16 := make([]uint16, n+1)
			isa.ScaleBF16(d16[:n], src, 0.37)
			for i, v := range src {
				if d32[i] != v*0.37 || d16[i] != bf16.FromFloat32FTZ(v*0.37) {
					t.Fatalf("%s n%d: scale(%g) = %g / %#04x, want %g", isa, n, v, d32[i], d16[i], v*0.37)
				}
			}
			if d32[n] != 0 || d16[n] != 0 {
				t.Fatalf("%s: wrote past n", isa)
			}
		}
	}
}

func TestLayerNorm(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, n := range []int{1, 7, 16, 48, 64, 100, 384, 512, 1280} {
		src := randSlice(r, n, 3)
		for i := range src {
			src[i] += 5 // an offset makes the one-pass variance formula fail
		}
		gamma, beta := randSlice(r, n, 1), randSlice(r, n, 1)
		var mean, v float64
		for _, x := range src {
			mean += float64(x)
		}
		mean /= float64(n)
		for _, x := range src {
			v += (float64(x) - mean) * (float64(x) - mean)
		}
		v /= float64(n)
		for _, isa := range isas() {
			dst := make([]float32, n)
			if err := isa.LayerNorm(dst, src, gamma, beta, 1e-5); err != nil {
				t.Fatal(err)
			}
			for i, x := range src {
				norm := (float64(x) - mean) / math.Sqrt(v+1e-5)
				ref := norm*float64(gamma[i]) + float64(beta[i])
				if e := math.Abs(float64(dst[i]) - ref); e > 2e-5*(1+math.Abs(norm*float64(gamma[i]))) {
					t.Fatalf("%s n%d: layernorm[%d] = %g, want %g", isa, n, i, dst[i], ref)
				}
			}
		}
	}
	if err := Portable.LayerNorm(make([]float32, 4), make([]float32, 4), make([]float32, 3), make([]float32, 4), 1e-5); err == nil {
		t.Fatal("LayerNorm accepted a short gamma")
	}
}
