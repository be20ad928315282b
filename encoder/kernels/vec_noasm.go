//go:build purego || !amd64

package kernels

func geluBF16AVX512(dst *uint16, src *float32, n int)             { panic("kernels: no assembly") }
func geluF32AVX512(dst *float32, src *float32, n int)             { panic("kernels: no assembly") }
func scaleBF16AVX512(dst *uint16, src *float32, n int, s float32) { panic("kernels: no assembly") }
func scaleF32AVX512(dst *float32, src *float32, n int, s float32) { panic("kernels: no assembly") }
func layerNormAVX512(dst, src *float32, n int, gamma, beta *float32, invN, eps float32) {
	panic("kernels: no assembly")
}
func geluAVX2(dst, src *float32, n int)             { panic("kernels: no assembly") }
func scaleAVX2(dst, src *float32, n int, s float32) { panic("kernels: no assembly") }
func layerNormAVX2(dst, src *float32, n int, gamma, beta *float32, invN, eps float32) {
	panic("kernels: no assembly")
}
func softmaxBlockBF16AVX512(p *uint16, ldp uintptr, s *float32, lds uintptr, rows, n int, m, l, o *float32, ldo uintptr, no int) {
	panic("kernels: no assembly")
}
func softmaxBlockF32AVX512(p *float32, ldp uintptr, s *float32, lds uintptr, rows, n int, m, l, o *float32, ldo uintptr, no int) {
	panic("kernels: no assembly")
}
func scaleRowsBF16AVX512(dst *uint16, ldd uintptr, src *float32, lds uintptr, rows, n int, f *float32) {
	panic("kernels: no assembly")
}
func scaleRowsF32AVX512(dst *float32, ldd uintptr, src *float32, lds uintptr, rows, n int, f *float32) {
	panic("kernels: no assembly")
}
func addBF16AVX512(dst *float32, src *uint16, n int)              { panic("kernels: no assembly") }
func exp2AVX2(dst, src *float32, n int, mul, add float32) float32 { panic("kernels: no assembly") }
func maxAVX2(src *float32, n int) float32                         { panic("kernels: no assembly in this build") }

func addBF16AVX2(dst *float32, src *uint16, n int)                { panic("kernels: no assembly") }
func pairsBF16AVX512(dst *uint32, a, b *float32, n int)           { panic("kernels: no assembly") }
func scatterPairsBF16AVX512(dst *uint32, src *float32, pairs int) { panic("kernels: no assembly") }
