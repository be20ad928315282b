//go:build purego || !amd64

package kernels

import "unsafe"

// Without assembly Detect reports Portable: these are never called, and
// the exact-row tables are empty.

var (
	rowsF32I8AVX512, rowsBF16I8AVX512 [14]int8Kern
	rowsF32I8AVX2                     [6]int8Kern
)

func gemmF32I8AVX512(a unsafe.Pointer, lda uintptr, b *int8, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr, scale *float32) {
	panic("kernels: no assembly in this build")
}

func gemmBF16I8AVX512(a unsafe.Pointer, lda uintptr, b *int8, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr, scale *float32) {
	panic("kernels: no assembly in this build")
}

func gemmF32I8AVX2(a unsafe.Pointer, lda uintptr, b *int8, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr, scale *float32) {
	panic("kernels: no assembly in this build")
}
