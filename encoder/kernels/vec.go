package kernels

import (
	"fmt"
	"math"

	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
)

// Row operations. Each has an AVX-512 path (the bf16-output forms need
// AVX512BF16), an AVX2 path for the float32 forms (whole 8-lane blocks; the
// tail goes through the portable code) and a portable twin computing the same
// formulas in float32. The attention's online softmax is in attn.go.

func maxOf(s []float32) float32 {
	m := float32(math.Inf(-1))
	for _, v := range s {
		m = max(m, v)
	}
	return m
}

// GELUBF16 writes dst[i] = bf16(GELU(src[i])), GELU(x) = x·Φ(x) with the
// exact (erf) Φ evaluated to bf16 precision (see geluBF16).
func (i ISA) GELUBF16(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	if len(src) == 0 {
		return
	}
	if i >= AVX512BF16 {
		geluBF16AVX512(&dst[0], &src[0], len(src))
		return
	}
	for j, v := range src {
		dst[j] = bf16.FromFloat32FTZ(geluBF16(v))
	}
}

// GELU writes dst[i] = GELU(src[i]); dst may alias src.
func (i ISA) GELU(dst, src []float32) {
	dst = dst[:len(src)]
	if len(src) == 0 {
		return
	}
	if i >= AVX512 {
		geluF32AVX512(&dst[0], &src[0], len(src))
		return
	}
	n8 := 0
	if i == AVX2 {
		if n8 = len(src) &^ 7; n8 > 0 {
			geluAVX2(&dst[0], &src[0], n8)
		}
	}
	for j := n8; j < len(src); j++ {
		dst[j] = gelu(src[j])
	}
}

// ScaleBF16 writes dst[i] = bf16(src[i]·s).
func (i ISA) ScaleBF16(dst []uint16, src []float32, s float32) {
	dst = dst[:len(src)]
	if len(src) == 0 {
		return
	}
	if i >= AVX512BF16 {
		scaleBF16AVX512(&dst[0], &src[0], len(src), s)
		return
	}
	for j, v := range src {
		dst[j] = bf16.FromFloat32FTZ(v * s)
	}
}

// Scale writes dst[i] = src[i]·s; dst may alias src.
func (i ISA) Scale(dst, src []float32, s float32) {
	dst = dst[:len(src)]
	if len(src) == 0 {
		return
	}
	if i >= AVX512 {
		scaleF32AVX512(&dst[0], &src[0], len(src), s)
		return
	}
	n8 := 0
	if i == AVX2 {
		if n8 = len(src) &^ 7; n8 > 0 {
			scaleAVX2(&dst[0], &src[0], n8, s)
		}
	}
	for j := n8; j < len(src); j++ {
		dst[j] = src[j] * s
	}
}

// LayerNorm normalises one row: dst = (src − mean)/√(var + eps)·gamma + beta,
// with the biased variance of src. dst may alias src; gamma and beta have
// len(src) values.
func (i ISA) LayerNorm(dst, src, gamma, beta []float32, eps float32) error {
	n := len(src)
	if len(dst) < n || len(gamma) != n || len(beta) != n {
		return fmt.Errorf("kernels: layer norm of %d values with dst %d, gamma %d, beta %d", n, len(dst), len(gamma), len(beta))
	}
	if n == 0 {
		return nil
	}
	if i >= AVX512 && n%16 == 0 {
		layerNormAVX512(&dst[0], &src[0], n, &gamma[0], &beta[0], 1/float32(n), eps)
		return nil
	}
	if i == AVX2 && n%8 == 0 {
		layerNormAVX2(&dst[0], &src[0], n, &gamma[0], &beta[0], 1/float32(n), eps)
		return nil
	}
	var sum float32
	for _, v := range src {
		sum += v
	}
	mean := sum / float32(n)
	var ss float32
	for _, v := range src {
		d := v - mean
		ss += d * d
	}
	r := 1 / float32(math.Sqrt(float64(ss/float32(n)+eps)))
	for j, v := range src {
		dst[j] = (v-mean)*r*gamma[j] + beta[j]
	}
	return nil
}

// expf is the portable twin of the assembly exp: Cody–Waite reduction by
// ln 2 and a degree-6 Taylor polynomial (relative error < 1.3e−7); results
// below the normal range flush to zero.
func expf(x float32) float32 {
	x = max(x, -100)
	if x > 88.72 {
		return float32(math.Inf(1))
	}
	n := float32(math.RoundToEven(float64(x * 1.442695)))
	r := x - n*0.693359375 + n*2.12194440e-4
	p := float32(1.0 / 720)
	for _, c := range [...]float32{1.0 / 120, 1.0 / 24, 1.0 / 6, 0.5, 1, 1} {
		p = p*r + c
	}
	e := int32(n) + 127
	if e <= 0 {
		return 0
	}
	return p * math.Float32frombits(uint32(e)<<23)
}

// gelu is the portable twin of the assembly GELU: x·Φ(x) with Φ from the
// Numerical Recipes erfc, erfc(z) = t·exp(−z² + P(t)), t = 1/(1 + z/2).
func gelu(x float32) float32 {
	z := float32(math.Abs(float64(x))) * 0.70710678
	t := 1 / (1 + 0.5*z)
	p := float32(0.17087277)
	for _, c := range [...]float32{-0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806, 0.09678418, 0.37409196, 1.00002368, -1.26551223} {
		p = p*t + c
	}
	h := 0.5 * t * expf(p-z*z)
	if x > 0 {
		return x * (1 - h)
	}
	return x * h
}

// geluBF16 is the portable twin of the bf16-output GELU: Φ(−|x|) =
// ½·erfc(|x|/√2) by Abramowitz–Stegun 7.1.26, erfc(z) = P(t)·t·e^(−z²) with
// t = 1/(1 + 0.3275911·z) (absolute error ≤ 1.5e−7), the ½ folded into the
// coefficients and e^(−z²) from the bf16 exp2 (relative error < 3e−6). The
// GELU's relative error stays below 2e−4 where |GELU(x)| > 1e−3 (a tenth
// of a bf16 half-ulp); below, its absolute error is under 2e−6·|x|.
func geluBF16(x float32) float32 {
	a := float32(math.Abs(float64(x)))
	t := 1 / (1 + 0.23164189952*a)
	p := float32(0.5307027145)
	for _, c := range [...]float32{-0.7265760135, 0.7107068705, -0.142248368, 0.127414796} {
		p = p*t + c
	}
	h := p * t * exp2Poly(x*x*-0.7213475204444817, exp2BF16Coef[:])
	if x > 0 {
		h = 1 - h
	}
	return x * h
}
