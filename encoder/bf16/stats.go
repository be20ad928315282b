package bf16

import (
	"encoding/binary"
	"math"
	"unsafe"
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
	sums
	nonFinite, overflow int64
}

// sums are the error sums of the finite values, copied into locals by the conversion loops so
// that they stay in registers.
type sums struct{ maxAbs, sumSqErr, sumSq float64 }

// run converts src into dst and records the errors: the hot loop of staging.
// Where the platform has one, a vector loop converts whole blocks of values
// (runBlocks) and the scalar loop below takes the blocks it leaves: ones
// holding NaN, ±Inf or overflow, and the tail.
func (a *acc) run(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	s := a.sums // a local: stays in registers
	var v sums  // the vector loop's sums
	for i := 0; i < len(dst); {
		i += runBlocks(dst[i:], unsafe.Pointer(unsafe.SliceData(src[i:])), &v)
		for end := min(i+16, len(dst)); i < end; i++ {
			b := math.Float32bits(src[i])
			h, ok := round(b)
			if ok {
				s = s.add(b, h)
			} else {
				h = a.special(b)
			}
			dst[i] = h
		}
	}
	a.sums = s.merge(v)
}

// runLE is run reading little-endian float32 bytes in place (4·len(dst) of them).
func (a *acc) runLE(dst []uint16, src []byte) {
	src = src[:4*len(dst)]
	s := a.sums
	var v sums
	for i := 0; i < len(dst); {
		i += runBlocks(dst[i:], unsafe.Pointer(unsafe.SliceData(src[4*i:])), &v)
		for end := min(i+16, len(dst)); i < end; i++ {
			b := binary.LittleEndian.Uint32(src[4*i : 4*i+4])
			h, ok := round(b)
			if ok {
				s = s.add(b, h)
			} else {
				h = a.special(b)
			}
			dst[i] = h
		}
	}
	a.sums = s.merge(v)
}

// round converts the float32 with bits b to bfloat16, rounding to nearest even; ok is false
// for NaN, ±Inf and overflow to ±Inf (integer tests), which special converts and counts.
func round(b uint32) (h uint16, ok bool) {
	h = uint16((b + 0x7fff + (b>>16)&1) >> 16)
	return h, b&0x7f800000 != 0x7f800000 && h&0x7f80 != 0x7f80
}

// add returns s with the error of converting the finite float32 with bits b to the bfloat16 h.
func (s sums) add(b uint32, h uint16) sums {
	x := float64(math.Float32frombits(b))
	d := x - float64(math.Float32frombits(uint32(h)<<16))
	s.sumSqErr += d * d
	s.sumSq += x * x
	if ad := math.Abs(d); ad > s.maxAbs {
		s.maxAbs = ad
	}
	return s
}

// merge returns the sums of s and o together.
func (s sums) merge(o sums) sums {
	return sums{maxAbs: math.Max(s.maxAbs, o.maxAbs), sumSqErr: s.sumSqErr + o.sumSqErr, sumSq: s.sumSq + o.sumSq}
}

// special converts the NaN, ±Inf or overflowing float32 with bits b and counts it apart.
func (a *acc) special(b uint32) uint16 {
	if b&0x7f800000 == 0x7f800000 {
		a.nonFinite++
	} else {
		a.overflow++
	}
	return FromFloat32(math.Float32frombits(b))
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

// ConvertLE is Convert for little-endian float32 bytes (as stored in ONNX
// raw_data), read in place.
func ConvertLE(dst []uint16, src []byte) ErrorStats {
	var c Converter
	c.LE(dst, src)
	return c.Stats()
}

// Converter converts one tensor in parts (so the caller can release each
// part of the source once converted) and accumulates the error stats.
type Converter struct {
	a acc
	n int
}

// LE converts the little-endian float32 bytes src into dst (len(src)/4 values).
func (c *Converter) LE(dst []uint16, src []byte) {
	n := len(src) / 4
	c.a.runLE(dst[:n], src)
	c.n += n
}

// TransposedLE converts whole rows of a rows×cols row-major float32 matrix,
// starting at row i0 (src holds len(src)/(4·cols) rows), into dst, the
// cols×rows transpose of the whole matrix.
func (c *Converter) TransposedLE(dst []uint16, src []byte, rows, cols, i0 int) {
	n := len(src) / (4 * cols)
	buf := make([]uint16, min(strip, n)*cols)
	for k := 0; k < n; k += strip {
		m := min(strip, n-k)
		c.a.runLE(buf[:m*cols], src[4*k*cols:4*(k+m)*cols])
		transposeStrip(dst, buf, i0+k, m, rows, cols)
	}
	c.n += n * cols
}

// Stats returns the error stats of everything converted so far.
func (c *Converter) Stats() ErrorStats { return c.a.stats(c.n) }

// strip is the number of source rows converted at a time by the transposing
// conversions: they are converted in order (a sequential read), then written
// out column by column, strip values at a time (contiguous writes).
const strip = 32

// ConvertTransposed converts src, a rows×cols matrix in row-major order, into
// dst as its cols×rows transpose, and returns the error stats.
func ConvertTransposed(dst []uint16, src []float32, rows, cols int) ErrorStats {
	var a acc
	buf := make([]uint16, strip*cols)
	for i0 := 0; i0 < rows; i0 += strip {
		n := min(strip, rows-i0)
		a.run(buf[:n*cols], src[i0*cols:(i0+n)*cols])
		transposeStrip(dst, buf, i0, n, rows, cols)
	}
	return a.stats(rows * cols)
}

// ConvertTransposedLE is ConvertTransposed for little-endian float32 bytes.
func ConvertTransposedLE(dst []uint16, src []byte, rows, cols int) ErrorStats {
	var c Converter
	c.TransposedLE(dst, src[:4*rows*cols], rows, cols, 0)
	return c.Stats()
}

// transposeStrip writes rows i0..i0+n of a rows×cols matrix, held in buf as
// n×cols, into dst, its cols×rows transpose: eight output columns at a time
// (one 16-byte read of buf per row feeds eight sequential writers; 4× faster
// than a column at a time for whisper-base's fc1), then the columns left.
func transposeStrip(dst, buf []uint16, i0, n, rows, cols int) {
	j := 0
	for ; j+8 <= cols; j += 8 {
		o0, o1 := dst[j*rows+i0:][:n], dst[(j+1)*rows+i0:][:n]
		o2, o3 := dst[(j+2)*rows+i0:][:n], dst[(j+3)*rows+i0:][:n]
		o4, o5 := dst[(j+4)*rows+i0:][:n], dst[(j+5)*rows+i0:][:n]
		o6, o7 := dst[(j+6)*rows+i0:][:n], dst[(j+7)*rows+i0:][:n]
		for k := range o0 {
			r := buf[k*cols+j:][:8]
			o0[k], o1[k], o2[k], o3[k] = r[0], r[1], r[2], r[3]
			o4[k], o5[k], o6[k], o7[k] = r[4], r[5], r[6], r[7]
		}
	}
	for ; j < cols; j++ {
		out := dst[j*rows+i0:][:n]
		for k := range out {
			out[k] = buf[k*cols+j]
		}
	}
}
