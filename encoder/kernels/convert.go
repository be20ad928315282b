package kernels

import "math"

// BF16 rounds f to bfloat16 the way VCVTNE2PS2BF16 does: to nearest, ties to
// even; denormal inputs become a signed zero; NaN stays a quiet NaN; values
// past the largest finite bf16 round to ±Inf.
func BF16(f float32) uint16 {
	u := math.Float32bits(f)
	switch exp := u & 0x7f800000; {
	case exp == 0:
		return uint16(u>>16) & 0x8000
	case exp == 0x7f800000 && u&0x007fffff != 0:
		return uint16(u>>16) | 0x0040
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

// F32 widens a bfloat16 to float32 (exact).
func F32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// ToBF16 converts src to bf16 into dst (len(dst) ≥ len(src)), rounding as BF16.
func (i ISA) ToBF16(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	n := 0
	if i >= AVX512BF16 {
		n = len(src) &^ 31
		if n > 0 {
			cvtBF16AVX512(&dst[0], &src[0], n)
		}
	}
	for j := n; j < len(src); j++ {
		dst[j] = BF16(src[j])
	}
}
