//go:build purego || !amd64

package kernels

// Without assembly Detect reports Portable, so this is never called.
func gemvBF16AVX2(c *float32, a *float32, b *uint16, pairs int, panels int, accum int, bias *float32) {
	panic("kernels: no assembly in this build")
}
