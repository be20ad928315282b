package backend

import (
	"fmt"

	"github.com/xdna-whisper/xdna-whisper/encoder/kernels"
)

// PackInt8 is Pack for weight-only int8: each output row of w [out][in]
// (bf16 bits) is quantised to int8 with a power-of-two scale
// (kernels.PackInt8) and packed as kernels.Int8Cols, out·in bytes (rounded
// up to whole panels and an even in) plus 4 bytes a row. Linear, LinearCols,
// MLP and Rows use it like a bf16 weight holding the dequantised values q·s,
// and give the same results bit for bit, with either activation precision.
func (c *CPU) PackInt8(w []uint16, out, in int) (Weight, error) {
	if len(w) != out*in || out < 0 || in < 0 {
		return nil, fmt.Errorf("backend: pack int8 weight [%d %d]: have %d values", out, in, len(w))
	}
	n := kernels.PackedLen(kernels.Int8Cols, out, in)
	cols := (out + kernels.PanelCols - 1) / kernels.PanelCols * kernels.PanelCols
	mem, err := c.weights.alloc(n + 4*cols)
	if err != nil {
		return nil, fmt.Errorf("backend: pack int8 weight [%d %d]: %w", out, in, err)
	}
	// The scales first: 64-byte aligned like the int8 panels after them
	// (n is a multiple of 64).
	cw := &cpuWeight{p: kernels.Packed{Scale: view[float32](mem, cols)[:0], I8: view[int8](mem[4*cols:], n)[:0]}}
	if err := kernels.PackInt8(&cw.p, w, out, in, in); err != nil {
		return nil, fmt.Errorf("backend: pack int8 weight [%d %d]: %w", out, in, err)
	}
	return cw, nil
}
