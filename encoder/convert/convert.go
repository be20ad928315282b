package convert

import (
	"fmt"

	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
	"github.com/xdna-whisper/xdna-whisper/encoder/onnx"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

// buffers are one worker's reusable scratch space.
type buffers struct {
	f32 []float32
}

func (b *buffers) floats(n int) []float32 {
	if cap(b.f32) < n {
		b.f32 = make([]float32, n)
	}
	return b.f32[:n]
}

// convert writes the BF16 values of w in canonical layout into dst and
// returns the conversion's error stats, measured against the source values
// after dequantization.
func convert(m *onnx.Model, w *weight, dst []uint16, buf *buffers) (bf16.ErrorStats, error) {
	var stats bf16.ErrorStats
	var err error
	switch w.enc {
	case plain:
		stats, err = convertPlain(m, w, dst, buf)
	case linearQ:
		stats, err = convertLinearQ(m, w, dst, buf)
	case nbitsQ:
		stats, err = convertNBits(m, w, dst, buf)
	}
	if err != nil {
		return stats, fmt.Errorf("tensor %s (%s): %w", w.name, w.describe(), err)
	}
	return stats, nil
}

// rowsCols is the stored [rows, cols] of a 2-D weight kept transposed.
func rowsCols(t *onnx.Tensor) (int, int) { return int(t.Dims[0]), int(t.Dims[1]) }

func convertPlain(m *onnx.Model, w *weight, dst []uint16, buf *buffers) (bf16.ErrorStats, error) {
	t := w.tensor
	if t.DataType == onnx.Float {
		b, ok, err := m.Bytes(t)
		if err != nil {
			return bf16.ErrorStats{}, err
		}
		if ok { // read in place: raw_data, external data, packed float_data
			return convertInPlace(m, w, dst, b), nil
		}
	}
	switch t.DataType {
	case onnx.Float, onnx.Float16, onnx.BFloat16, onnx.Double:
	default:
		return bf16.ErrorStats{}, fmt.Errorf("data type %s, want FLOAT, FLOAT16, BFLOAT16 or DOUBLE", t.DataType)
	}
	f := buf.floats(int(t.NumElements()))
	if err := m.Float32s(t, f); err != nil {
		return bf16.ErrorStats{}, err
	}
	return toBF16(dst, f, w, t), nil
}

// releaseEvery is how many source bytes are converted between releases of
// their pages, bounding the resident part of a large tensor.
const releaseEvery = 4 << 20

// convertInPlace converts little-endian float32 bytes read in place, in parts
// of whole rows, releasing each part's pages once converted.
func convertInPlace(m *onnx.Model, w *weight, dst []uint16, b []byte) bf16.ErrorStats {
	var c bf16.Converter
	if !w.transposed {
		for off := 0; off < len(b); off += releaseEvery {
			end := min(off+releaseEvery, len(b))
			c.LE(dst[off/4:end/4], b[off:end])
			m.ReleaseBytes(b[off:end])
		}
		return c.Stats()
	}
	rows, cols := rowsCols(w.tensor)
	step := max(1, releaseEvery/(4*cols))
	for i0 := 0; i0 < rows; i0 += step {
		i1 := min(i0+step, rows)
		part := b[4*i0*cols : 4*i1*cols]
		c.TransposedLE(dst, part, rows, cols, i0)
		m.ReleaseBytes(part)
	}
	return c.Stats()
}

// toBF16 converts a weight to bfloat16 with bf16.Convert (bf16.FromFloat32
// rounding: staged weights are the nearest bfloat16 of every value, subnormals
// included, not the kernels' flush-to-zero rounding), transposed when
// w.transposed.
func toBF16(dst []uint16, f []float32, w *weight, t *onnx.Tensor) bf16.ErrorStats {
	if w.transposed {
		r, c := rowsCols(t)
		return bf16.ConvertTransposed(dst, f, r, c)
	}
	return bf16.Convert(dst, f)
}

// convertLinearQ dequantizes w = (q − zero_point)·scale, with a per-tensor
// or per-channel (output channel: the last axis of a MatMul B [K, N], the
// first of a conv weight) scale and zero point.
func convertLinearQ(m *onnx.Model, w *weight, dst []uint16, buf *buffers) (bf16.ErrorStats, error) {
	q := w.tensor
	if q.DataType != onnx.Int8 && q.DataType != onnx.Uint8 {
		return bf16.ErrorStats{}, fmt.Errorf("quantized weight of type %s, want INT8 or UINT8", q.DataType)
	}
	channels := int(q.Dims[0])
	if w.transposed {
		channels = int(q.Dims[len(q.Dims)-1])
	}
	scale, err := smallFloats(m, w.scale, channels, "scale")
	if err != nil {
		return bf16.ErrorStats{}, err
	}
	zp := []float32{0}
	if w.zeroPoint != nil {
		if w.zeroPoint.DataType != q.DataType {
			return bf16.ErrorStats{}, fmt.Errorf("zero point %q of type %s, weight is %s", w.zeroPoint.Name, w.zeroPoint.DataType, q.DataType)
		}
		if zp, err = smallFloats(m, w.zeroPoint, channels, "zero point"); err != nil {
			return bf16.ErrorStats{}, err
		}
	}
	f := buf.floats(int(q.NumElements()))
	if err := m.Float32s(q, f); err != nil {
		return bf16.ErrorStats{}, err
	}
	inner := len(f) / int(q.Dims[0]) // conv: elements per output channel
	for i := range f {
		c := 0
		if w.transposed {
			c = i % channels
		} else {
			c = i / inner
		}
		f[i] = (f[i] - pick(zp, c)) * pick(scale, c)
	}
	return toBF16(dst, f, w, q), nil
}

func pick(v []float32, c int) float32 {
	if len(v) == 1 {
		return v[0]
	}
	return v[c]
}

// smallFloats decodes a per-tensor (1 value) or per-channel (channels values)
// quantization parameter.
func smallFloats(m *onnx.Model, t *onnx.Tensor, channels int, what string) ([]float32, error) {
	if n := t.NumElements(); n != 1 && n != int64(channels) {
		return nil, fmt.Errorf("%s %q has %d values, want 1 or %d (per channel)", what, t.Name, n, channels)
	}
	v := make([]float32, t.NumElements())
	if err := m.Float32s(t, v); err != nil {
		return nil, err
	}
	return v, nil
}

// convertNBits dequantizes com.microsoft::MatMulNBits weights: B packs, for
// each output column n and block b, block_size 4-bit values low nibble first;
// w[n, k] = (q − zp[n, b])·scale[n, b] with zp 8 when no zero points are given,
// else packed nibbles (uint8) or values (float) per block.
func convertNBits(m *onnx.Model, w *weight, dst []uint16, buf *buffers) (bf16.ErrorStats, error) {
	K, N, block := w.k, w.n, w.block
	nb := (K + block - 1) / block
	blob := block * w.bits / 8
	b := w.tensor
	if b.DataType != onnx.Uint8 || b.NumElements() != int64(N*nb*blob) {
		return bf16.ErrorStats{}, fmt.Errorf("input B is %s %v, want UINT8 [%d %d %d] for K %d, N %d, block_size %d", b.DataType, b.Dims, N, nb, blob, K, N, block)
	}
	scale := make([]float32, N*nb)
	if w.scale.NumElements() != int64(N*nb) {
		return bf16.ErrorStats{}, fmt.Errorf("scales %q has %d values, want N·blocks = %d", w.scale.Name, w.scale.NumElements(), N*nb)
	}
	if err := m.Float32s(w.scale, scale); err != nil {
		return bf16.ErrorStats{}, err
	}
	zp, err := nbitsZeroPoints(m, w.zeroPoint, N, nb)
	if err != nil {
		return bf16.ErrorStats{}, err
	}
	packed, ok, err := m.Bytes(b)
	if err != nil {
		return bf16.ErrorStats{}, err
	}
	if !ok {
		f := buf.floats(int(b.NumElements()))
		if err := m.Float32s(b, f); err != nil {
			return bf16.ErrorStats{}, err
		}
		packed = make([]byte, len(f))
		for i, v := range f {
			packed[i] = byte(v)
		}
	}
	f := buf.floats(N * K)
	for n := range N {
		for k := range K {
			blk, j := k/block, k%block
			byt := packed[(n*nb+blk)*blob+j/2]
			q := byt & 0x0f
			if j%2 == 1 {
				q = byt >> 4
			}
			f[n*K+k] = (float32(q) - zp[n*nb+blk]) * scale[n*nb+blk]
		}
	}
	return bf16.Convert(dst, f), nil
}

// nbitsZeroPoints expands MatMulNBits zero points to one float per block.
func nbitsZeroPoints(m *onnx.Model, t *onnx.Tensor, N, nb int) ([]float32, error) {
	zp := make([]float32, N*nb)
	if t == nil {
		for i := range zp {
			zp[i] = 8
		}
		return zp, nil
	}
	perCol := (nb + 1) / 2
	switch {
	case t.DataType == onnx.Uint8 && t.NumElements() == int64(N*perCol):
		raw := make([]float32, N*perCol)
		if err := m.Float32s(t, raw); err != nil {
			return nil, err
		}
		for n := range N {
			for b := range nb {
				v := uint8(raw[n*perCol+b/2])
				if b%2 == 1 {
					v >>= 4
				}
				zp[n*nb+b] = float32(v & 0x0f)
			}
		}
	case t.DataType != onnx.Uint8 && t.NumElements() == int64(N*nb):
		if err := m.Float32s(t, zp); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("zero_points %q is %s with %d values, want UINT8 with N·⌈blocks/2⌉ = %d or float with N·blocks = %d",
			t.Name, t.DataType, t.NumElements(), N*perCol, N*nb)
	}
	return zp, nil
}

// precisionOf names the source precision of the identified weights: the
// least precise encoding any of them uses.
func precisionOf(ws map[string]*weight) staged.Precision {
	rank := map[staged.Precision]int{staged.Float32: 0, staged.BFloat16: 1, staged.Float16: 2, staged.Uint8: 3, staged.Int8: 4, staged.Q4: 5}
	best := staged.Float32
	for _, w := range ws {
		p := staged.Float32
		switch {
		case w.enc == nbitsQ:
			p = staged.Q4
		case w.enc == linearQ && w.tensor.DataType == onnx.Int8:
			p = staged.Int8
		case w.enc == linearQ:
			p = staged.Uint8
		case w.tensor.DataType == onnx.Float16:
			p = staged.Float16
		case w.tensor.DataType == onnx.BFloat16:
			p = staged.BFloat16
		}
		if rank[p] > rank[best] {
			best = p
		}
	}
	return best
}
