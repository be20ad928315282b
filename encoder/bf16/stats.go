package bf16

import (
	"encoding/binary"
	"math"
)

// ErrorStats summarizes the error of converting a tensor to bfloat16.
// Non-finite source values (NaN, ±Inf) are counted in NonFinite and left out
// of the error sums: bfloat16 keeps them exactly.
type ErrorStats struct {
	// Count is the number of finite values measured.
	Count int64 `json:"count"`
	// NonFinite is the number of NaN or ±Inf source values.
	NonFinite int64 `json:"nonFinite,omitempty"`
	// Overflow is the number of finite source values that rounded to ±Inf
	// (|x| ≥ 3.3961776e38); they are left out of the error sums.
	Overflow int64 `json:"overflow,omitempty"`
	// MaxAbs is max |x − bf16(x)| over the finite values.
	MaxAbs float64 `json:"maxAbsError"`
	// RelRMS is sqrt(Σ(x − bf16(x))² / Σx²), 0 when every x is 0.
	RelRMS float64 `json:"relRMSError"`

	sumSqErr, sumSq float64
}

// Add records one source value x and its bfloat16 conversion h.
func (s *ErrorStats) Add(x float32, h uint16) {
	if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
		s.NonFinite++
		return
	}
	y := ToFloat32(h)
	if math.IsInf(float64(y), 0) {
		s.Overflow++
		return
	}
	d := float64(x) - float64(y)
	s.Count++
	s.sumSqErr += d * d
	s.sumSq += float64(x) * float64(x)
	if a := math.Abs(d); a > s.MaxAbs {
		s.MaxAbs = a
	}
	s.finish()
}

// Merge adds the values recorded in o to s.
func (s *ErrorStats) Merge(o ErrorStats) {
	s.Count += o.Count
	s.NonFinite += o.NonFinite
	s.Overflow += o.Overflow
	s.sumSqErr += o.sumSqErr
	s.sumSq += o.sumSq
	s.MaxAbs = math.Max(s.MaxAbs, o.MaxAbs)
	s.finish()
}

func (s *ErrorStats) finish() {
	if s.sumSq > 0 {
		s.RelRMS = math.Sqrt(s.sumSqErr / s.sumSq)
	} else {
		s.RelRMS = 0
	}
}

// acc accumulates error stats across the conversion loops.
type acc struct {
	maxAbs, sumSqErr, sumSq float64
	nonFinite, overflow     int64
}

// run converts src into dst and records the errors: the hot loop of staging,
// with the accumulators in registers and integer tests for the rare
// non-finite and overflow cases.
func (a *acc) run(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	maxAbs, sumSqErr, sumSq := a.maxAbs, a.sumSqErr, a.sumSq
	for i, x := range src {
		b := math.Float32bits(x)
		r := b + 0x7fff + (b>>16)&1
		h := uint16(r >> 16)
		if b&0x7f800000 == 0x7f800000 || h&0x7f80 == 0x7f80 {
			dst[i] = a.special(x, b)
			continue
		}
		dst[i] = h
		fx := float64(x)
		d := fx - float64(math.Float32frombits(r&0xffff0000))
		sumSqErr += d * d
		sumSq += fx * fx
		if d < 0 {
			d = -d
		}
		if d > maxAbs {
			maxAbs = d
		}
	}
	a.maxAbs, a.sumSqErr, a.sumSq = maxAbs, sumSqErr, sumSq
}

// special handles NaN, ±Inf and overflow to ±Inf: counted apart.
func (a *acc) special(x float32, b uint32) uint16 {
	if b&0x7f800000 == 0x7f800000 {
		a.nonFinite++
	} else {
		a.overflow++
	}
	return FromFloat32(x)
}

func (a *acc) stats(n int) ErrorStats {
	s := ErrorStats{
		Count: int64(n) - a.nonFinite - a.overflow, NonFinite: a.nonFinite, Overflow: a.overflow,
		MaxAbs: a.maxAbs, sumSqErr: a.sumSqErr, sumSq: a.sumSq,
	}
	s.finish()
	return s
}

// Convert converts src into dst (as FromFloat32s) and returns the error stats
// of the conversion. One pass, no allocation.
func Convert(dst []uint16, src []float32) ErrorStats {
	var a acc
	a.run(dst, src)
	return a.stats(len(src))
}

// chunk is the number of values decoded at a time by the byte-reading loops.
const chunk = 512

// ConvertLE is Convert for little-endian float32 bytes (as stored in ONNX
// raw_data), read in place.
func ConvertLE(dst []uint16, src []byte) ErrorStats {
	n := len(src) / 4
	dst = dst[:n]
	var a acc
	var buf [chunk]float32
	for off := 0; off < n; off += chunk {
		m := min(chunk, n-off)
		decodeLE(buf[:m], src[4*off:])
		a.run(dst[off:off+m], buf[:m])
	}
	return a.stats(n)
}

func decodeLE(dst []float32, src []byte) {
	src = src[:4*len(dst)]
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

// tile is the block edge of the transposing conversions.
const tile = 64

// ConvertTransposed converts src, a rows×cols matrix in row-major order, into
// dst as its cols×rows transpose, and returns the error stats.
func ConvertTransposed(dst []uint16, src []float32, rows, cols int) ErrorStats {
	var a acc
	var out [tile]uint16
	for i0 := 0; i0 < rows; i0 += tile {
		for j0 := 0; j0 < cols; j0 += tile {
			j1 := min(j0+tile, cols)
			for i := i0; i < min(i0+tile, rows); i++ {
				a.run(out[:j1-j0], src[i*cols+j0:i*cols+j1])
				scatter(dst, out[:j1-j0], j0, i, rows)
			}
		}
	}
	return a.stats(rows * cols)
}

// ConvertTransposedLE is ConvertTransposed for little-endian float32 bytes.
func ConvertTransposedLE(dst []uint16, src []byte, rows, cols int) ErrorStats {
	var a acc
	var in [tile]float32
	var out [tile]uint16
	for i0 := 0; i0 < rows; i0 += tile {
		for j0 := 0; j0 < cols; j0 += tile {
			j1 := min(j0+tile, cols)
			for i := i0; i < min(i0+tile, rows); i++ {
				decodeLE(in[:j1-j0], src[4*(i*cols+j0):])
				a.run(out[:j1-j0], in[:j1-j0])
				scatter(dst, out[:j1-j0], j0, i, rows)
			}
		}
	}
	return a.stats(rows * cols)
}

// scatter writes row i, columns j0.. of a matrix into its transpose.
func scatter(dst, row []uint16, j0, i, rows int) {
	for k, h := range row {
		dst[(j0+k)*rows+i] = h
	}
}
