// Package bf16 converts between IEEE-754 binary32 (float32) and bfloat16, the
// upper 16 bits of a float32: 1 sign bit, 8 exponent bits, 7 mantissa bits.
// It is the project's one definition of both directions.
//
// FromFloat32 rounds to nearest, ties to even; a NaN stays a (quiet) NaN with
// its sign; ±Inf stays ±Inf; finite values beyond the largest bfloat16
// (≈3.3895e38) round to ±Inf, as round-to-nearest requires. Subnormal inputs
// round like any other value (to a subnormal bfloat16 or zero). ToFloat32 is
// exact.
//
// FromFloat32FTZ is the same except that subnormal inputs become a zero of
// their sign: the rounding of the AVX512_BF16 conversion instructions
// (VCVTNEPS2BF16, VCVTNE2PS2BF16), which ignore MXCSR and flush denormals.
//
// Which one to use: FromFloat32 where bfloat16 values are stored or sent
// (staged weights, the server's bfloat16 output), because it is the nearest
// bfloat16 for every input; FromFloat32FTZ where a result must be bit-identical
// to what those instructions compute (package kernels' bf16 activations, whose
// portable and AVX2 paths and vector-loop tails must match the AVX512_BF16
// path). The two differ only for |x| < 2⁻¹²⁶, far below any activation's scale.
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

// FromFloat32FTZ returns FromFloat32(f), except that a subnormal f (or a zero)
// becomes a zero of f's sign, as VCVTNEPS2BF16 and VCVTNE2PS2BF16 compute
// (see the package comment for when to use which).
func FromFloat32FTZ(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7f800000 == 0 { // zero exponent: ±0 or subnormal
		return uint16(b>>16) & 0x8000
	}
	return FromFloat32(f)
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
