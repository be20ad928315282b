package kernels

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
)

// Weight-only int8: each output row w of a weight (a column of C) is stored
// as int8 q with one power-of-two scale s = 2^e per row, e the smallest
// integer with 127·2^e ≥ max|w| (clamped so that s is a normal float32),
// q = RoundToEven(w/s) in [-127, 127]. Every q·s is exactly a bf16 and a
// float32 value, so the int8 GEMMs, which widen q·s to float32 and then run
// the fp32 kernels' FMAs in their order, equal MatMulF32 on the BF16Pairs
// packing of the dequantised weights bit for bit. Quantising a row that is
// already on its grid is the identity.

// Int8Exp is the exponent e of the scale 2^e of a row whose largest
// magnitude is maxAbs: the smallest e with 127·2^e ≥ maxAbs, at least -126
// (a normal float32 scale); 0 for an all-zero row.
func Int8Exp(maxAbs float32) int {
	if maxAbs == 0 || math.IsNaN(float64(maxAbs)) {
		return 0
	}
	frac, exp := math.Frexp(float64(maxAbs)) // maxAbs = frac·2^exp, frac in [0.5, 1)
	e := exp - 7                             // 127·2^(exp-7) = (127/128)·2^exp
	if frac > 127.0/128 {
		e++
	}
	return max(e, -126)
}

// QuantizeInt8 quantises row to q (len(row) values) and returns the scale.
// Non-finite values are an error.
func QuantizeInt8(q []int8, row []float32) (float32, error) {
	var m float32
	for i, v := range row {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return 0, fmt.Errorf("kernels: int8 quantise: value %d is %g, want a finite number", i, v)
		}
		m = max(m, float32(math.Abs(float64(v))))
	}
	e := Int8Exp(m)
	inv := math.Ldexp(1, -e) // exact: a power of two
	for i, v := range row {
		q[i] = int8(math.RoundToEven(float64(v) * inv))
	}
	return float32(math.Ldexp(1, e)), nil
}

// RoundInt8BF16 rounds the bf16 row in place to its int8 grid: each value
// becomes q·s, the weight the int8 kernels multiply by. tmp is scratch of
// len(row) values.
func RoundInt8BF16(row []uint16, tmp []float32) error {
	f := tmp[:len(row)]
	for i, v := range row {
		f[i] = bf16.ToFloat32(v)
	}
	q := make([]int8, len(row))
	s, err := QuantizeInt8(q, f)
	if err != nil {
		return err
	}
	for i, v := range q {
		row[i] = bf16.FromFloat32FTZ(float32(v) * s)
	}
	return nil
}

// PackInt8 quantises the bf16 matrix src [n][k] (row stride ld) row by row
// and packs it into dst as Int8Cols.
func PackInt8(dst *Packed, src []uint16, n, k, ld int) error {
	if err := checkSrc("int8 [n][k]", len(src), n, k, ld); err != nil {
		return err
	}
	dst.resize(Int8Cols, n, k)
	f := make([]float32, k)
	q := make([]int8, k)
	for r := range n {
		for j, v := range src[r*ld : r*ld+k] {
			f[j] = bf16.ToFloat32(v)
		}
		s, err := QuantizeInt8(q, f)
		if err != nil {
			return fmt.Errorf("kernels: pack int8 row %d: %w", r, err)
		}
		dst.Scale[r] = s
		base := (r/PanelCols)*dst.KP*PanelCols + r%PanelCols
		for j, v := range q {
			dst.I8[base+j*PanelCols] = v
		}
	}
	return nil
}

// Cols is the view of panels [p0, p1) of p: the columns 32·p0 up to
// min(N, 32·p1), sharing p's memory.
func (p *Packed) Cols(p0, p1 int) Packed {
	c0 := p0 * PanelCols
	sub := Packed{Format: p.Format, N: min(p.N, p1*PanelCols) - c0, K: p.K, KP: p.KP}
	switch p.Format {
	case BF16Pairs:
		sub.BF16 = p.BF16[p0*p.KP*PanelCols : p1*p.KP*PanelCols]
	case Int8Cols:
		sub.I8 = p.I8[p0*p.KP*PanelCols : p1*p.KP*PanelCols]
		sub.Scale = p.Scale[c0 : p1*PanelCols]
	default:
		sub.F32 = p.F32[p0*p.K*PanelCols : p1*p.K*PanelCols]
	}
	return sub
}

// RowF32 writes row n of p (K values, B[n][·]) widened to float32 into dst.
func (p *Packed) RowF32(dst []float32, n int) error {
	if n < 0 || n >= p.N || len(dst) < p.K {
		return fmt.Errorf("kernels: row %d of a packed [%d %d] into %d values", n, p.N, p.K, len(dst))
	}
	pn, c := n/PanelCols, n%PanelCols
	switch p.Format {
	case BF16Pairs:
		panel := p.BF16[pn*p.KP*PanelCols+2*c:]
		for k := range dst[:p.K] {
			dst[k] = bf16.ToFloat32(panel[(k/2)*2*PanelCols+k%2])
		}
	case Int8Cols:
		panel, s := p.I8[pn*p.KP*PanelCols+c:], p.Scale[n]
		for k := range dst[:p.K] {
			dst[k] = float32(panel[k*PanelCols]) * s
		}
	default:
		panel := p.F32[pn*p.K*PanelCols+c:]
		for k := range dst[:p.K] {
			dst[k] = panel[k*PanelCols]
		}
	}
	return nil
}

// int8Kern is an int8 micro-kernel: the tileFn contract with B an Int8Cols
// panel position (64 bytes per k-pair, n counts k-pairs) and scale the
// scales of the tile's first column (advancing 32 a panel).
type int8Kern func(a unsafe.Pointer, lda uintptr, b *int8, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr, scale *float32)

// int8Tile adapts an int8Kern to tileFn for one packed B: it finds the
// scales of a tile from the tile's B address (panel and column within it).
type int8Tile struct {
	kern       int8Kern
	base       uintptr // &B.I8[0]
	panelBytes uintptr
	scale      []float32
}

func (t *int8Tile) tile(a unsafe.Pointer, lda uintptr, b unsafe.Pointer, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr) {
	off := uintptr(b) - t.base
	// Within a panel, B moves by whole k-pair rows (64 bytes) and by the
	// tile's first column.
	col := off/t.panelBytes*PanelCols + off%t.panelBytes%(2*PanelCols)
	t.kern(a, lda, (*int8)(b), c, ldc, n, bias, accum, panels, bstride, &t.scale[col])
}

// int8Portable is the Go twin of the int8 assembly: 14×32 tiles, each
// weight widened to q·s, then even k and odd k of each pair as
// f32bf16Portable.
func int8Portable(a unsafe.Pointer, lda uintptr, b *int8, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr, scale *float32) {
	for p := range panels {
		var bp *float32
		if bias != nil {
			bp = (*float32)(unsafe.Add(unsafe.Pointer(bias), p*goNR*4))
		}
		sp := (*[goNR]float32)(unsafe.Add(unsafe.Pointer(scale), p*goNR*4))
		cp := (*float32)(unsafe.Add(unsafe.Pointer(c), p*goNR*4))
		int8PortableTile(a, lda, unsafe.Add(unsafe.Pointer(b), uintptr(p)*bstride), cp, ldc, n, bp, accum, sp)
	}
}

func int8PortableTile(a unsafe.Pointer, lda uintptr, b unsafe.Pointer, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, scale *[goNR]float32) {
	bs := unsafe.Slice((*int8)(b), n*2*goNR)
	var w0, w1 [goNR]float32
	for r := 0; r < goMR; r++ {
		var acc [goNR]float32
		initTile(&acc, c, ldc, r, bias, accum)
		ar := unsafe.Slice((*float32)(unsafe.Add(a, uintptr(r)*lda)), 2*n)
		for q := 0; q < n; q++ {
			for j := range w0 {
				w0[j] = float32(bs[2*q*goNR+j]) * scale[j]
				w1[j] = float32(bs[(2*q+1)*goNR+j]) * scale[j]
			}
			a0, a1 := ar[2*q], ar[2*q+1]
			for j := range acc {
				acc[j] += a0 * w0[j]
				acc[j] += a1 * w1[j]
			}
		}
		storeTile(&acc, c, ldc, r)
	}
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// matMulInt8 is MatMulF32 (aSize 4: float32 A) or MatMulBF16 (aSize 2:
// bf16 A) for an Int8Cols B, operands checked. Only the last row tile can
// be partial (m mod the tile height rows): it gets its exact-row kernel.
func (i ISA) matMulInt8(a unsafe.Pointer, aSize int, c []float32, ldc, lda, m int, b *Packed, bias []float32, accum bool, s *Scratch) {
	t := int8Tile{kern: int8Portable, base: uintptr(unsafe.Pointer(&b.I8[0])), panelBytes: uintptr(b.KP * PanelCols), scale: b.Scale}
	mk := micro{mr: 14, nr: 32, aSize: aSize, kUnit: 2, bUnit: 2 * PanelCols, bCol: 1}
	var table []int8Kern
	switch {
	case aSize == 2 && i >= AVX512BF16:
		t.kern, table = gemmBF16I8AVX512, rowsBF16I8AVX512[:]
	case aSize == 2:
		t.kern = int8PortableBF16
	case i >= AVX512:
		t.kern, table = gemmF32I8AVX512, rowsF32I8AVX512[:]
	case i == AVX2:
		t.kern, table, mk.mr, mk.nr = gemmF32I8AVX2, rowsF32I8AVX2[:], i.TileRows(), 16
	}
	mk.tile = t.tile
	var rows [maxMR]tileFn
	part := t
	if r := m % mk.mr; r > 0 && r < len(table) && table[r] != nil {
		part.kern = table[r]
		rows[r] = part.tile
		mk.rows = rows[:mk.mr]
	}
	drive(mk, c, ldc, a, lda, m, b, unsafe.Pointer(&b.I8[0]), bias, accum, s)
}

// int8PortableBF16 is the Go twin of gemmBF16I8AVX512: each k-pair of the
// panel becomes the bf16 pair words of q·s, then bf16PortableTile's order.
func int8PortableBF16(a unsafe.Pointer, lda uintptr, b *int8, c *float32, ldc uintptr, n int, bias *float32, accum uintptr, panels int, bstride uintptr, scale *float32) {
	for p := range panels {
		var bp *float32
		if bias != nil {
			bp = (*float32)(unsafe.Add(unsafe.Pointer(bias), p*goNR*4))
		}
		sp := (*[goNR]float32)(unsafe.Add(unsafe.Pointer(scale), p*goNR*4))
		bs := unsafe.Slice((*int8)(unsafe.Add(unsafe.Pointer(b), uintptr(p)*bstride)), n*2*goNR)
		words := make([]uint16, n*2*goNR) // the BF16Pairs panel rows of q·s
		for q := range n {
			for j := range goNR {
				words[q*2*goNR+2*j] = bf16.FromFloat32FTZ(float32(bs[2*q*goNR+j]) * sp[j])
				words[q*2*goNR+2*j+1] = bf16.FromFloat32FTZ(float32(bs[(2*q+1)*goNR+j]) * sp[j])
			}
		}
		cp := (*float32)(unsafe.Add(unsafe.Pointer(c), p*goNR*4))
		bf16PortableTile(a, lda, unsafe.Pointer(&words[0]), cp, ldc, n, bp, accum)
	}
}
