//go:build purego || !amd64

package kernels

func softmaxBF16AVX512(dst *uint16, src *float32, n int) float32  { panic("kernels: no assembly") }
func softmaxF32AVX512(dst *float32, src *float32, n int) float32  { panic("kernels: no assembly") }
func geluBF16AVX512(dst *uint16, src *float32, n int)             { panic("kernels: no assembly") }
func geluF32AVX512(dst *float32, src *float32, n int)             { panic("kernels: no assembly") }
func scaleBF16AVX512(dst *uint16, src *float32, n int, s float32) { panic("kernels: no assembly") }
func scaleF32AVX512(dst *float32, src *float32, n int, s float32) { panic("kernels: no assembly") }
func layerNormAVX512(dst, src *float32, n int, gamma, beta *float32, invN, eps float32) {
	panic("kernels: no assembly")
}
func maxAVX2(src *float32, n int) float32                    { panic("kernels: no assembly") }
func expSubAVX2(dst, src *float32, n int, m float32) float32 { panic("kernels: no assembly") }
func geluAVX2(dst, src *float32, n int)                      { panic("kernels: no assembly") }
func scaleAVX2(dst, src *float32, n int, s float32)          { panic("kernels: no assembly") }
func layerNormAVX2(dst, src *float32, n int, gamma, beta *float32, invN, eps float32) {
	panic("kernels: no assembly")
}
