package kernels

import (
	"unsafe"

	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
)

// Assembly tiles behind the common tileFn signature.

func bf16AVX512(a unsafe.Pointer, lda uintptr, b unsafe.Pointer, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr) {
	gemmBF16AVX512((*uint16)(a), lda, (*uint16)(b), c, ldc, n, bias, accum, panels, bstride)
}

func f32bf16AVX512(a unsafe.Pointer, lda uintptr, b unsafe.Pointer, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr) {
	gemmF32BF16AVX512((*float32)(a), lda, (*uint16)(b), c, ldc, n, bias, accum, panels, bstride)
}

func f32f32AVX512(a unsafe.Pointer, lda uintptr, b unsafe.Pointer, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr) {
	gemmF32F32AVX512((*float32)(a), lda, (*float32)(b), c, ldc, n, bias, accum, panels, bstride)
}

func f32bf16AVX2(a unsafe.Pointer, lda uintptr, b unsafe.Pointer, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr) {
	gemmF32BF16AVX2((*float32)(a), lda, (*uint16)(b), c, ldc, n, bias, accum, panels, bstride)
}

func f32f32AVX2(a unsafe.Pointer, lda uintptr, b unsafe.Pointer, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr) {
	gemmF32F32AVX2((*float32)(a), lda, (*float32)(b), c, ldc, n, bias, accum, panels, bstride)
}

// The portable twins: 14×32 tiles in plain Go with the same contract.

const (
	goMR = 14
	goNR = PanelCols
)

// forPanels runs a single-tile portable kernel over panels tiles side by side.
func forPanels(tile func(a unsafe.Pointer, lda uintptr, b unsafe.Pointer, c *float32, ldc uintptr, n int, bias *float32, accum uintptr),
	a unsafe.Pointer, lda uintptr, b unsafe.Pointer, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr) {
	for p := range panels {
		var bp *float32
		if bias != nil {
			bp = (*float32)(unsafe.Add(unsafe.Pointer(bias), p*goNR*4))
		}
		tile(a, lda, unsafe.Add(b, uintptr(p)*bstride), (*float32)(unsafe.Add(unsafe.Pointer(c), p*goNR*4)), ldc, n, bp, accum)
	}
}

// initTile loads the accumulators of row r: C or zero, plus bias.
func initTile(acc *[goNR]float32, c *float32, ldc uintptr, r int, bias *float32, accum uintptr) {
	if accum != 0 {
		copy(acc[:], unsafe.Slice((*float32)(unsafe.Add(unsafe.Pointer(c), uintptr(r)*ldc)), goNR))
	} else {
		*acc = [goNR]float32{}
	}
	if bias != nil {
		for j, v := range unsafe.Slice(bias, goNR) {
			acc[j] += v
		}
	}
}

func storeTile(acc *[goNR]float32, c *float32, ldc uintptr, r int) {
	copy(unsafe.Slice((*float32)(unsafe.Add(unsafe.Pointer(c), uintptr(r)*ldc)), goNR), acc[:])
}

// bf16Portable is the twin of gemmBF16AVX512: each k-pair adds the odd then
// the even product, as VDPBF16PS is specified (products of bf16 are exact).
func bf16Portable(a unsafe.Pointer, lda uintptr, b unsafe.Pointer, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr) {
	forPanels(bf16PortableTile, a, lda, b, c, ldc, n, bias, accum, panels, bstride)
}

func bf16PortableTile(a unsafe.Pointer, lda uintptr, b unsafe.Pointer, c *float32, ldc uintptr, n int, bias *float32, accum uintptr) {
	bs := unsafe.Slice((*uint16)(b), n*2*goNR)
	for r := 0; r < goMR; r++ {
		var acc [goNR]float32
		initTile(&acc, c, ldc, r, bias, accum)
		ar := unsafe.Slice((*uint16)(unsafe.Add(a, uintptr(r)*lda)), 2*n)
		for q := 0; q < n; q++ {
			a0, a1 := bf16.ToFloat32(ar[2*q]), bf16.ToFloat32(ar[2*q+1])
			bq := bs[q*2*goNR : (q+1)*2*goNR]
			for j := range acc {
				acc[j] += a1 * bf16.ToFloat32(bq[2*j+1])
				acc[j] += a0 * bf16.ToFloat32(bq[2*j])
			}
		}
		storeTile(&acc, c, ldc, r)
	}
}

// f32bf16Portable is the twin of gemmF32BF16AVX512 (even k, then odd k).
func f32bf16Portable(a unsafe.Pointer, lda uintptr, b unsafe.Pointer, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr) {
	forPanels(f32bf16PortableTile, a, lda, b, c, ldc, n, bias, accum, panels, bstride)
}

func f32bf16PortableTile(a unsafe.Pointer, lda uintptr, b unsafe.Pointer, c *float32, ldc uintptr, n int, bias *float32, accum uintptr) {
	bs := unsafe.Slice((*uint16)(b), n*2*goNR)
	for r := 0; r < goMR; r++ {
		var acc [goNR]float32
		initTile(&acc, c, ldc, r, bias, accum)
		ar := unsafe.Slice((*float32)(unsafe.Add(a, uintptr(r)*lda)), 2*n)
		for q := 0; q < n; q++ {
			a0, a1 := ar[2*q], ar[2*q+1]
			bq := bs[q*2*goNR : (q+1)*2*goNR]
			for j := range acc {
				acc[j] += a0 * bf16.ToFloat32(bq[2*j])
				acc[j] += a1 * bf16.ToFloat32(bq[2*j+1])
			}
		}
		storeTile(&acc, c, ldc, r)
	}
}

// f32f32Portable is the twin of gemmF32F32AVX512.
func f32f32Portable(a unsafe.Pointer, lda uintptr, b unsafe.Pointer, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr) {
	forPanels(f32f32PortableTile, a, lda, b, c, ldc, n, bias, accum, panels, bstride)
}

func f32f32PortableTile(a unsafe.Pointer, lda uintptr, b unsafe.Pointer, c *float32, ldc uintptr, n int, bias *float32, accum uintptr) {
	bs := unsafe.Slice((*float32)(b), n*goNR)
	for r := 0; r < goMR; r++ {
		var acc [goNR]float32
		initTile(&acc, c, ldc, r, bias, accum)
		ar := unsafe.Slice((*float32)(unsafe.Add(a, uintptr(r)*lda)), n)
		for k, av := range ar {
			bk := bs[k*goNR : (k+1)*goNR]
			for j := range acc {
				acc[j] += av * bk[j]
			}
		}
		storeTile(&acc, c, ldc, r)
	}
}
