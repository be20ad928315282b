// Package decoder is the Whisper text decoder on the CPU: it loads the
// decoder's weights (a Hugging Face directory through Source, as bf16),
// packs them for the backend once, and advances many independent token
// sequences together, one Step at a time.
//
// The math (transformers' WhisperDecoder), for d = d_model, h heads of
// dimension d/h, a sequence at position n and encoder output E [P][d]:
//
//	x = embed_tokens[token] + embed_positions[n]
//	for each block:                            pre-LayerNorm, eps 1e-5
//	    x += out(selfattn(LN1(x)))  causal, keys/values of positions ≤ n cached
//	    x += out(crossattn(LN2(x))) keys/values E·Wkᵀ, E·Wvᵀ+bv once per window
//	    x += fc2(GELU(fc1(LN3(x))))           exact (erf) GELU
//	logits = LN(x)·embed_tokensᵀ               tied output projection
//
// with attention softmax(q·kᵀ/√(d/h))·v per head (k_proj has no bias).
//
// Batching: Step advances any set of sequences at once, each with its own
// position, self-attention cache and window (Cross). Their rows are stacked
// into one matrix, so each weight is streamed once per step for the whole
// batch; the attention runs per sequence and head. Sequences may join or
// leave between steps (continuous batching); a prompt is prefilled as
// several rows of one step.
//
// Precision: weights are bf16 (or int8 with a scale per output row for the
// step-time matrices, Options.Weights "int8"); activations float32 (rounded
// to bf16 at the weight GEMMs with Options.Activations "bf16"); the
// attention caches hold bf16 keys and values; accumulation is float32.
package decoder

import (
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"slices"
	"strings"
	"sync"

	"github.com/xdna-whisper/xdna-whisper/encoder/backend"
	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
	"github.com/xdna-whisper/xdna-whisper/encoder/kernels"
)

// Options configure Load and New.
type Options struct {
	// Threads is the number of worker goroutines (default GOMAXPROCS).
	Threads int
	// Kernels selects the kernel ISA: "auto" (default), "avx512bf16",
	// "avx512", "avx2" or "portable".
	Kernels string
	// Activations is the precision of the activations fed to the weight
	// GEMMs: "auto" (bf16 with the avx512bf16 kernels, else fp32), "bf16"
	// or "fp32".
	Activations string
	// Weights is the storage of the matrices a decode step streams (self
	// q/k/v and out, cross q and out, fc1, fc2 and the tied embedding and
	// output projection): "bf16" (default, also "") or "int8", weight-only
	// int8 with a power-of-two scale per output row (kernels.PackInt8),
	// quantised at load. The cross-attention k/v projections, run once per
	// window, stay bf16. With either activation precision the logits equal
	// those of bf16 weights holding the dequantised values bit for bit.
	Weights string
}

// Weight storage names of Options.Weights.
const (
	WeightsBF16 = "bf16"
	WeightsInt8 = "int8"
)

// eps is the LayerNorm epsilon of every Whisper LayerNorm.
const eps = 1e-5

// Decoder holds the packed decoder weights. It is safe for concurrent use
// by many Batches; Close releases it.
type Decoder struct {
	cfg     Config
	cpu     *backend.CPU
	isa     kernels.ISA
	storage string // Options.Weights, resolved
	packed  int
	embed   backend.Weight // [vocab][d]: the embedding table and the output projection
	pos     []float32      // [max_target_positions][d]
	layers  []layer
	ln      backend.Norm
	scratch []scratch // per worker of the backend's pool

	mu     sync.RWMutex // held for reading by Step and NewCross, for writing by Close
	closed bool
}

type layer struct {
	ln1, ln2, ln3 backend.Norm
	qkv, out      backend.Weight // self-attention: [3d][d] (q, k, v stacked), [d][d]
	qkvB, outB    []float32
	cq, ckv, cout backend.Weight // cross-attention: q [d][d], k and v [2d][d], out [d][d]
	cqB, ckvB     []float32
	coutB         []float32
	fc1, fc2      backend.Weight
	fc1B, fc2B    []float32
}

// LoadHF loads the decoder of the Hugging Face model directory dir
// (config.json, model.safetensors or its shards).
func LoadHF(dir string, opts Options) (*Decoder, error) {
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	src, err := OpenHF(dir)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	if err := src.checkTied(); err != nil {
		return nil, err
	}
	d, err := New(cfg, src, opts)
	if err != nil {
		return nil, fmt.Errorf("load decoder from %s: %w", dir, err)
	}
	return d, nil
}

// New packs the decoder tensors of src, described by cfg.
func New(cfg Config, src Source, opts Options) (*Decoder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	isa, act, weights, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	cpu, err := backend.NewCPU(isa, act, opts.Threads)
	if err != nil {
		return nil, err
	}
	d := &Decoder{cfg: cfg, cpu: cpu, isa: isa, storage: weights, scratch: make([]scratch, cpu.Pool().Workers())}
	if err := d.load(src); err != nil {
		cpu.Close()
		return nil, err
	}
	cpu.PackDone()
	debug.FreeOSMemory() // the bf16 copies of float32 tensors
	return d, nil
}

// resolve reads the options: the ISA, the activation precision and the
// weight storage.
func (o Options) resolve() (kernels.ISA, backend.Precision, string, error) {
	weights := strings.ToLower(o.Weights)
	switch weights {
	case "":
		weights = WeightsBF16
	case WeightsBF16, WeightsInt8:
	default:
		return 0, 0, "", fmt.Errorf("decoder options: weights %q, want %s or %s", o.Weights, WeightsBF16, WeightsInt8)
	}
	isa, prec, err := backend.Choose(o.Kernels, o.Activations)
	if err != nil {
		return 0, 0, "", fmt.Errorf("decoder options: %w", err)
	}
	return isa, prec, weights, nil
}

// loader reads tensors of a Source with their expected shapes.
type loader struct {
	src Source
	d   *Decoder
}

func (l *loader) get(name string, shape ...int) ([]uint16, error) {
	s, data, err := l.src.Tensor(name)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(s, shape) {
		return nil, fmt.Errorf("decoder tensor %s: shape %v, want %v", name, s, shape)
	}
	n := 1
	for _, x := range shape {
		n *= x
	}
	if len(data) != n {
		return nil, fmt.Errorf("decoder tensor %s: %d values, shape %v wants %d", name, len(data), shape, n)
	}
	return data, nil
}

// release tells a file-backed source that tensor name has been copied.
func (l *loader) release(name string) error {
	if r, ok := l.src.(Releaser); ok {
		return r.Release(name)
	}
	return nil
}

// floats widens the tensor name of the given shape to float32.
func (l *loader) floats(name string, shape ...int) ([]float32, error) {
	b, err := l.get(name, shape...)
	if err != nil {
		return nil, err
	}
	out := make([]float32, len(b))
	for i, v := range b {
		out[i] = bf16.ToFloat32(v)
	}
	l.d.packed += 4 * len(out)
	return out, l.release(name)
}

func (l *loader) vec(name string, n int) ([]float32, error) { return l.floats(name, n) }

func (l *loader) norm(name string, n int) (backend.Norm, error) {
	w, err := l.vec(name+".weight", n)
	if err != nil {
		return backend.Norm{}, err
	}
	b, err := l.vec(name+".bias", n)
	return backend.Norm{Weight: w, Bias: b, Eps: eps}, err
}

// mat packs the matrices names (each [rows_i][in]) stacked into one
// weight, as bf16.
func (l *loader) mat(in int, names []string, rows ...int) (backend.Weight, error) {
	return l.pack(l.d.cpu.Pack, in, names, rows...)
}

// stepMat is mat for a matrix every decode step streams: int8 when the
// decoder's weights are int8.
func (l *loader) stepMat(in int, names []string, rows ...int) (backend.Weight, error) {
	if l.d.storage == WeightsInt8 {
		return l.pack(l.d.cpu.PackInt8, in, names, rows...)
	}
	return l.mat(in, names, rows...)
}

// pack stacks the matrices names and packs them with packer.
func (l *loader) pack(packer func(w []uint16, out, in int) (backend.Weight, error), in int, names []string, rows ...int) (backend.Weight, error) {
	total := 0
	for _, r := range rows {
		total += r
	}
	var stack []uint16
	if len(names) == 1 { // pack straight from the source's view
		w, err := l.get(names[0], rows[0], in)
		if err != nil {
			return nil, err
		}
		stack = w
	} else {
		stack = make([]uint16, 0, total*in)
		for i, n := range names {
			w, err := l.get(n, rows[i], in)
			if err != nil {
				return nil, err
			}
			stack = append(stack, w...)
		}
	}
	pw, err := packer(stack, total, in)
	if err != nil {
		return nil, err
	}
	l.d.packed += pw.Bytes()
	for _, n := range names {
		if err := l.release(n); err != nil {
			return nil, err
		}
	}
	return pw, nil
}

func (d *Decoder) load(src Source) error {
	c := d.cfg
	dm, f, v := c.DModel, c.FFN, c.Vocab
	l := &loader{src: src, d: d}
	var err error
	if d.embed, err = l.stepMat(dm, []string{"embed_tokens.weight"}, v); err != nil {
		return err
	}
	if d.pos, err = l.floats("embed_positions.weight", c.MaxTargetPositions, dm); err != nil {
		return err
	}
	if d.ln, err = l.norm("layer_norm", dm); err != nil {
		return err
	}
	d.layers = make([]layer, c.Layers)
	for i := range d.layers {
		if err := l.layer(&d.layers[i], fmt.Sprintf("layers.%d.", i), dm, f); err != nil {
			return err
		}
	}
	return nil
}

func (l *loader) layer(y *layer, p string, d, f int) error {
	var err error
	for _, n := range []struct {
		dst  *backend.Norm
		name string
	}{{&y.ln1, "self_attn_layer_norm"}, {&y.ln2, "encoder_attn_layer_norm"}, {&y.ln3, "final_layer_norm"}} {
		if *n.dst, err = l.norm(p+n.name, d); err != nil {
			return err
		}
	}
	sa, ca := p+"self_attn.", p+"encoder_attn."
	if y.qkv, err = l.stepMat(d, []string{sa + "q_proj.weight", sa + "k_proj.weight", sa + "v_proj.weight"}, d, d, d); err != nil {
		return err
	}
	if y.out, err = l.stepMat(d, []string{sa + "out_proj.weight"}, d); err != nil {
		return err
	}
	if y.cq, err = l.stepMat(d, []string{ca + "q_proj.weight"}, d); err != nil {
		return err
	}
	if y.ckv, err = l.mat(d, []string{ca + "k_proj.weight", ca + "v_proj.weight"}, d, d); err != nil {
		return err
	}
	if y.cout, err = l.stepMat(d, []string{ca + "out_proj.weight"}, d); err != nil {
		return err
	}
	if y.fc1, err = l.stepMat(d, []string{p + "fc1.weight"}, f); err != nil {
		return err
	}
	if y.fc2, err = l.stepMat(f, []string{p + "fc2.weight"}, d); err != nil {
		return err
	}
	vecs := []struct {
		dst  *[]float32
		name string
		n    int
	}{
		{&y.outB, sa + "out_proj.bias", d}, {&y.cqB, ca + "q_proj.bias", d}, {&y.coutB, ca + "out_proj.bias", d},
		{&y.fc1B, p + "fc1.bias", f}, {&y.fc2B, p + "fc2.bias", d},
	}
	for _, v := range vecs {
		if *v.dst, err = l.vec(v.name, v.n); err != nil {
			return err
		}
	}
	// k_proj has no bias: zeros between q's and v's.
	qb, err := l.vec(sa+"q_proj.bias", d)
	if err != nil {
		return err
	}
	vb, err := l.vec(sa+"v_proj.bias", d)
	if err != nil {
		return err
	}
	y.qkvB = slices.Concat(qb, make([]float32, d), vb)
	cvb, err := l.vec(ca+"v_proj.bias", d)
	if err != nil {
		return err
	}
	y.ckvB = slices.Concat(make([]float32, d), cvb)
	return nil
}

// Config is the decoder's configuration.
func (d *Decoder) Config() Config { return d.cfg }

// Backend names the backend and kernels, e.g. "cpu/avx2/fp32".
func (d *Decoder) Backend() string { return d.cpu.Name() }

// Weights is the storage of the step-time matrices: "bf16" or "int8".
func (d *Decoder) Weights() string { return d.storage }

// Threads is the number of worker goroutines.
func (d *Decoder) Threads() int { return d.cpu.Pool().Workers() }

// PackedBytes is the memory of the packed weights and float32 vectors.
func (d *Decoder) PackedBytes() int { return d.packed }

// Close waits for running Steps and NewCross calls, then releases the
// packed weights; later calls return an error.
func (d *Decoder) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed {
		d.closed = true
		d.cpu.Close()
	}
}

var errClosed = errors.New("decoder: closed")

// acquire holds the decoder open for a call; release with d.mu.RUnlock.
func (d *Decoder) acquire() error {
	d.mu.RLock()
	if d.closed {
		d.mu.RUnlock()
		return errClosed
	}
	return nil
}

// scale is the attention scale 1/√(head dim).
func (d *Decoder) scale() float32 { return float32(1 / math.Sqrt(float64(d.cfg.HeadDim()))) }
