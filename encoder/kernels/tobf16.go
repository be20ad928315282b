package kernels

import "github.com/xdna-whisper/xdna-whisper/encoder/bf16"

// ToBF16 converts src to bf16 into dst (len(dst) ≥ len(src)), rounding as
// bf16.FromFloat32FTZ: flush-to-zero, because on AVX512_BF16 the whole
// 32-value blocks go through VCVTNE2PS2BF16, which flushes subnormals, and
// every ISA and every tail must give the same bits. (The other bf16 outputs
// of this package, the row operations' and softmax's, round the same way for
// the same reason; bf16 inputs widen exactly with bf16.ToFloat32.)
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
		dst[j] = bf16.FromFloat32FTZ(src[j])
	}
}
