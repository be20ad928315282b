//go:build !purego

package kernels

const haveAsm = true

// The micro-kernels (gemm_amd64.s) compute register tiles
// C[r][c] = (accum ? C[r][c] : 0) + bias[c] + Σ_k A[r][k]·B[k][c]
// for rows r < 14 (AVX-512) or 6 (AVX2) and columns c < 32 (AVX-512) or 16
// (AVX2), reading A rows lda bytes apart, the packed B panel from b (128 bytes
// per k or k-pair), and writing C rows ldc bytes apart. n counts k-pairs for
// bf16 panels and k for float32 panels. bias may be nil. They repeat this for
// panels tiles side by side: C and bias move by the tile width, b by bstride.

//go:noescape
func gemmBF16AVX512(a *uint16, lda uintptr, b *uint16, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr)

//go:noescape
func gemmF32BF16AVX512(a *float32, lda uintptr, b *uint16, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr)

//go:noescape
func gemmF32F32AVX512(a *float32, lda uintptr, b *float32, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr)

//go:noescape
func gemmF32BF16AVX2(a *float32, lda uintptr, b *uint16, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr)

//go:noescape
func gemmF32F32AVX2(a *float32, lda uintptr, b *float32, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr)

//go:noescape
func cvtBF16AVX512(dst *uint16, src *float32, n int)
