//go:build !purego

package kernels

// gemvBF16AVX2 is MatVecF32's row over whole panels (gemv_amd64.s).
//
//go:noescape
func gemvBF16AVX2(c *float32, a *float32, b *uint16, pairs int, panels int, accum int, bias *float32)
