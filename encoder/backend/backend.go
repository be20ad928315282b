// Package backend is the seam between the Whisper encoder's math and the
// hardware that runs its heavy parts: the weight GEMMs (the convolutions as
// im2col GEMMs, the feed-forward block) and the self-attention block (q/k/v
// projection, attention, output projection). Weights are packed once at load time
// into the layout the backend's kernels want (Pack); the encoder then calls
// the operations on float32 activations.
//
// CPU is the backend of this build; an NPU backend would implement the same
// interface with its own tiled weight layout.
package backend

import "fmt"

// Mat is a float32 row-major matrix view: row i is Data[i·Stride : i·Stride+Cols].
// Rows may overlap (Stride < Cols), which expresses an im2col view of a
// time-major signal without copying.
type Mat struct {
	Data               []float32
	Rows, Cols, Stride int
}

// Row returns row i.
func (m Mat) Row(i int) []float32 { return m.Data[i*m.Stride : i*m.Stride+m.Cols] }

// Check verifies that the view stays inside Data.
func (m Mat) Check(what string) error {
	switch {
	case m.Rows < 0 || m.Cols < 0 || m.Stride < 0:
		return fmt.Errorf("%s: negative shape [%d %d] stride %d", what, m.Rows, m.Cols, m.Stride)
	case m.Rows > 0 && m.Cols > 0 && len(m.Data) < (m.Rows-1)*m.Stride+m.Cols:
		return fmt.Errorf("%s: [%d %d] with stride %d needs %d values, have %d", what, m.Rows, m.Cols, m.Stride, (m.Rows-1)*m.Stride+m.Cols, len(m.Data))
	}
	return nil
}

// Norm is a LayerNorm applied to each input row of a GEMM:
// (x − mean)/√(var + Eps)·Weight + Bias with the biased variance.
type Norm struct {
	Weight, Bias []float32
	Eps          float32
}

// Weight is a weight matrix packed by a backend; only that backend can use it.
type Weight interface {
	// Shape is the logical [out, in] shape.
	Shape() (out, in int)
	// Bytes is the memory the packed form holds.
	Bytes() int
}

// Backend runs the encoder's weight GEMMs and attention. Implementations are
// safe for concurrent use; each call may use all of the backend's threads.
type Backend interface {
	// Name identifies the backend and its kernels, e.g. "cpu/avx512bf16/bf16".
	Name() string
	// Pack is the load-time hook: it takes a weight matrix [out][in] as bf16
	// bits (PyTorch Linear layout) and returns it in the backend's layout.
	Pack(w []uint16, out, in int) (Weight, error)
	// Linear computes dst = x·Wᵀ + bias, or dst += x·Wᵀ + bias when
	// accumulate, where x is src, or LayerNorm(src) row by row when norm is
	// not nil. dst is [src.Rows][out]; bias is nil or has out values.
	Linear(dst, src Mat, norm *Norm, w Weight, bias []float32, accumulate bool) error
	// MLP computes the feed-forward block dst += GELU(x·W1ᵀ + b1)·W2ᵀ + b2
	// with the exact (erf) GELU, x being src or LayerNorm(src) as in Linear.
	// dst may be src (the residual stream): each row is read before it is
	// written.
	MLP(dst, src Mat, norm *Norm, w1 Weight, b1 []float32, w2 Weight, b2 []float32) error
	// SelfAttention adds a pre-LayerNorm multi-head self-attention block to
	// the residual stream x [n][d]:
	//	[q k v] = x'·Wqkvᵀ + qkvBias   (x' = LayerNorm(x) by norm, or x)
	//	o = softmax(scale·q·kᵀ)·v      per head (d = heads·head dim, heads side by side)
	//	x += o·Woutᵀ + outBias
	// qkv is [3d][d] (q, k, v stacked), out is [d][d]; qkvBias has 3d values.
	SelfAttention(x Mat, norm *Norm, qkv Weight, qkvBias []float32, out Weight, outBias []float32, heads int, scale float32) error
}
