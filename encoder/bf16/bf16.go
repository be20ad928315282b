// Package bf16 converts between IEEE-754 binary32 (float32) and bfloat16, the
// upper 16 bits of a float32: 1 sign bit, 8 exponent bits, 7 mantissa bits.
//
// FromFloat32 rounds to nearest, ties to even; a NaN stays a (quiet) NaN with
// its sign; ±Inf stays ±Inf; finite values beyond the largest bfloat16
// (≈3.3895e38) round to ±Inf, as round-to-nearest requires. ToFloat32 is exact.
package bf16

import "math"

// FromFloat32 returns the bfloat16 bits nearest to f (ties to even).
func FromFloat32(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN: keep sign and top payload bits, force quiet
		return uint16(b>>16) | 0x0040
	}
	// Adding 0x7fff plus the lowest kept bit rounds the upper half to nearest even.
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// ToFloat32 returns the float32 value of the bfloat16 bits h (exact).
func ToFloat32(h uint16) float32 {
	return math.Float32frombits(uint32(h) << 16)
}

// FromFloat32s converts src into dst element by element; dst must be at least
// as long as src.
func FromFloat32s(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	for i, f := range src {
		dst[i] = FromFloat32(f)
	}
}

// ToFloat32s converts src into dst element by element; dst must be at least as
// long as src.
func ToFloat32s(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = ToFloat32(h)
	}
}
