//go:build purego || !amd64

package kernels

// Without assembly (purego tag or another architecture) Detect reports
// Portable, so these are never called.

const haveAsm = false

// The exact-row kernel tables (gemm_rows_amd64.go) are empty: partial row
// tiles are padded.
var (
	rowsBF16AVX512, rowsF32BF16AVX512, rowsF32F32AVX512 [14]tileFn
	rowsF32BF16AVX2, rowsF32F32AVX2                     [6]tileFn
)

func gemmBF16AVX512(a *uint16, lda uintptr, b *uint16, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr) {
	panic("kernels: no assembly in this build")
}

func gemmF32BF16AVX512(a *float32, lda uintptr, b *uint16, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr) {
	panic("kernels: no assembly in this build")
}

func gemmF32F32AVX512(a *float32, lda uintptr, b *float32, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr) {
	panic("kernels: no assembly in this build")
}

func gemmF32BF16AVX2(a *float32, lda uintptr, b *uint16, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr) {
	panic("kernels: no assembly in this build")
}

func gemmF32F32AVX2(a *float32, lda uintptr, b *float32, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr) {
	panic("kernels: no assembly in this build")
}

func cvtBF16AVX512(dst *uint16, src *float32, n int) { panic("kernels: no assembly in this build") }
