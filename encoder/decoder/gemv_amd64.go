//go:build !purego

package decoder

import "github.com/xdna-whisper/xdna-whisper/encoder/kernels"

//go:noescape
func gemvBF16AVX2(c *float32, a *float32, b *uint16, pairs int, panels int, accum int)

// haveGEMV reports whether gemv runs in assembly at isa.
func haveGEMV(isa kernels.ISA) bool { return isa >= kernels.AVX2 }

// gemv computes one row c[0 : 32·panels] (+)= a·Bᵀ over the whole panels of
// the BF16Pairs matrix b (a has b.KP values, the odd-K pad zero): the
// attention products of a single query row, which a GEMM tile would pad to
// its 6 or 14 rows. c must hold whole panels.
func gemv(c []float32, a []float32, b *kernels.Packed, accum bool) {
	panels, pairs := b.Panels(), b.KP/2
	if panels == 0 {
		return
	}
	_ = c[panels*kernels.PanelCols-1]
	_ = a[b.KP-1]
	_ = b.BF16[panels*pairs*2*kernels.PanelCols-1]
	acc := 0
	if accum {
		acc = 1
	}
	gemvBF16AVX2(&c[0], &a[0], &b.BF16[0], pairs, panels, acc)
}
