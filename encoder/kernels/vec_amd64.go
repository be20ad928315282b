//go:build !purego

package kernels

// Row operations in vec_amd64.s (AVX-512 F/BW/VL/DQ + AVX512_BF16).

//go:noescape
func softmaxBF16AVX512(dst *uint16, src *float32, n int) (sum float32)

//go:noescape
func softmaxF32AVX512(dst *float32, src *float32, n int) (sum float32)

//go:noescape
func geluBF16AVX512(dst *uint16, src *float32, n int)

//go:noescape
func geluF32AVX512(dst *float32, src *float32, n int)

//go:noescape
func scaleBF16AVX512(dst *uint16, src *float32, n int, s float32)

//go:noescape
func scaleF32AVX512(dst *float32, src *float32, n int, s float32)

//go:noescape
func layerNormAVX512(dst, src *float32, n int, gamma, beta *float32, invN, eps float32)

// AVX2 row operations (vec_avx2_amd64.s): whole 8-lane blocks only.

//go:noescape
func maxAVX2(src *float32, n int) float32

//go:noescape
func expSubAVX2(dst, src *float32, n int, m float32) (sum float32)

//go:noescape
func geluAVX2(dst, src *float32, n int)

//go:noescape
func scaleAVX2(dst, src *float32, n int, s float32)

//go:noescape
func layerNormAVX2(dst, src *float32, n int, gamma, beta *float32, invN, eps float32)
