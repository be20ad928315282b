//go:build !purego

package kernels

import "unsafe"

// The int8 micro-kernels (gemm_amd64.s): the tileFn contract with B an
// Int8Cols panel and an 11th argument, the scales of the tile's first
// column (see int8Kern).

//go:noescape
func gemmF32I8AVX512(a unsafe.Pointer, lda uintptr, b *int8, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr, scale *float32)

//go:noescape
func gemmBF16I8AVX512(a unsafe.Pointer, lda uintptr, b *int8, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr, scale *float32)

//go:noescape
func gemmF32I8AVX2(a unsafe.Pointer, lda uintptr, b *int8, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr, scale *float32)
