//go:build !purego

package kernels

// Row operations in vec_amd64.s (AVX-512 F/BW/VL/DQ + AVX512_BF16).

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
func geluAVX2(dst, src *float32, n int)

//go:noescape
func scaleAVX2(dst, src *float32, n int, s float32)

//go:noescape
func layerNormAVX2(dst, src *float32, n int, gamma, beta *float32, invN, eps float32)

// Flash-attention row operations (vec_amd64.s, attn.go).

//go:noescape
func softmaxBlockBF16AVX512(p *uint16, ldp uintptr, s *float32, lds uintptr, rows, n int, m, l, o *float32, ldo uintptr, no int)

//go:noescape
func softmaxBlockF32AVX512(p *float32, ldp uintptr, s *float32, lds uintptr, rows, n int, m, l, o *float32, ldo uintptr, no int)

//go:noescape
func scaleRowsBF16AVX512(dst *uint16, ldd uintptr, src *float32, lds uintptr, rows, n int, f *float32)

//go:noescape
func scaleRowsF32AVX512(dst *float32, ldd uintptr, src *float32, lds uintptr, rows, n int, f *float32)

//go:noescape
func addBF16AVX512(dst *float32, src *uint16, n int)

//go:noescape
func exp2AVX2(dst, src *float32, n int, mul, add float32) (sum float32)

//go:noescape
func addBF16AVX2(dst *float32, src *uint16, n int)

//go:noescape
func maxAVX2(src *float32, n int) float32

// Packing helpers of the attention operands (pack.go).

//go:noescape
func pairsBF16AVX512(dst *uint32, a, b *float32, n int)

//go:noescape
func scatterPairsBF16AVX512(dst *uint32, src *float32, pairs int)
