// Package model is the Whisper encoder: it loads a staged BF16 directory
// (encoder/staged), packs the weights for a backend once, and turns batches
// of log-mel windows into the encoder's last hidden state.
//
// The math, for a config with d = d_model, P = max_source_positions:
//
//	x = GELU(conv1(mel))            conv1: n_mels→d, kernel 3, pad 1
//	x = GELU(conv2(x)) + pos        conv2: d→d, kernel 3, stride 2, pad 1
//	for each block:                 pre-LayerNorm transformer (eps from the config)
//	    x += out_proj(attention(LN1(x)))   softmax(q·kᵀ·head_dim^−½)·v per head
//	    x += fc2(GELU(fc1(LN2(x))))        GELU is the exact (erf) form
//	hidden = LN(x)
//
// The convolutions run as GEMMs over im2col views of the time-major signal
// (weights reordered to [out][tap][in] at load), a block of conv2 rows at a
// time. Each attention half is one backend call (LN1, the q/k/v projection as
// one GEMM, a flash attention, the output projection), each feed-forward half
// another. The residual stream is the caller's output buffer. BF16 weights
// are packed in memory; activations are float32, optionally rounded to bf16
// at GEMM inputs (Options.Activations); accumulation is float32.
package model

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/xdna-whisper/xdna-whisper/encoder/backend"
	"github.com/xdna-whisper/xdna-whisper/encoder/kernels"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

// Options configure Load.
type Options struct {
	// Threads is the number of worker goroutines (default GOMAXPROCS).
	Threads int
	// Kernels selects the kernel ISA: "auto" (default: the best this CPU
	// supports), "avx512bf16", "avx512", "avx2" or "portable".
	Kernels string
	// Activations is the precision of the activations fed to GEMMs: "auto"
	// (default: bf16 where the kernels are avx512bf16, else fp32), "bf16"
	// or "fp32". Accumulation is float32 either way.
	Activations string
}

// Tensor is a float32 tensor in row-major (C) order.
type Tensor struct {
	Shape []int
	Data  []float32
}

// Encoder is a loaded Whisper encoder.
//
// Memory: the packed weights (41 MB for whisper-base) live outside the Go
// heap. A window's residual stream is its output buffer ([P][d] float32);
// besides it a running call holds the backend's attention workspace (q, k, v
// in the activation precision: 6·P·d bytes with bf16, 4.6 MB for
// whisper-base) and the stem's scratch (about 2 MB), both reused by later
// calls, and the workers' scratch (about 0.7 MB each).
//
// Concurrency: Encode may be called from many goroutines at once. All calls
// share one fixed set of Threads workers (their tasks interleave), and each
// running call holds its own workspaces, taken from free lists. Close waits
// for running calls.
type Encoder struct {
	cfg    staged.Config
	be     backend.Backend
	cpu    *backend.CPU
	pool   *backend.Pool
	isa    kernels.ISA
	eps    float32
	packed int // bytes of packed weights

	conv1, conv2   backend.Weight
	conv1b, conv2b []float32
	pos            []uint16 // [P][d] bf16
	layers         []layer
	lnW, lnB       []float32

	mu     sync.RWMutex // held for reading by Encode, for writing by Close
	closed bool
	wsMu   sync.Mutex
	free   []*workspace
	times  [numOps]atomic.Int64 // wall nanoseconds per op
	cpuNS  [numOps]atomic.Int64 // process CPU nanoseconds per op
}

type layer struct {
	ln1, ln2               backend.Norm
	qkv, out, fc1, fc2     backend.Weight
	qkvB, outB, fc1B, fc2B []float32
}

// Load opens the staged directory dir, validates it and packs its weights for
// the CPU backend. The staged file is closed (unmapped) before Load returns.
func Load(dir string, opts Options) (*Encoder, error) {
	isa, act, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	sm, err := staged.Open(dir)
	if err != nil {
		return nil, err
	}
	defer sm.Close()
	cpu, err := backend.NewCPU(isa, act, opts.Threads)
	if err != nil {
		return nil, err
	}
	e := &Encoder{cfg: sm.Config(), be: cpu, cpu: cpu, pool: cpu.Pool(), isa: isa}
	if err := e.load(sm); err != nil {
		cpu.Close()
		return nil, fmt.Errorf("load %s: %w", dir, err)
	}
	// Loading left temporaries (reordered conv weights, the stacked q/k/v)
	// on the heap; hand them back now rather than at the next GC cycle.
	debug.FreeOSMemory()
	return e, nil
}

func (o Options) resolve() (kernels.ISA, backend.Precision, error) {
	isa, prec, err := backend.Choose(o.Kernels, o.Activations)
	if err != nil {
		return 0, 0, fmt.Errorf("model options: %w", err)
	}
	return isa, prec, nil
}

// Config is the encoder's configuration, as staged.
func (e *Encoder) Config() staged.Config { return e.cfg }

// Backend names the backend and kernels in use, e.g. "cpu/avx512bf16/bf16".
func (e *Encoder) Backend() string { return e.be.Name() }

// Kernels is the kernel family running, e.g. "avx512bf16" (what --kernels
// auto chose, or the one forced).
func (e *Encoder) Kernels() string { return e.isa.String() }

// Threads is the number of worker goroutines.
func (e *Encoder) Threads() int { return e.pool.Workers() }

// PackedBytes is the memory held by the packed weights, the positional
// table and the float32 vectors.
func (e *Encoder) PackedBytes() int { return e.packed }

// WorkspaceBytes is the activation memory the encoder holds between calls
// (reused by the next ones): the stem's and the backend's workspaces and the
// workers' scratch. Output buffers are the caller's.
func (e *Encoder) WorkspaceBytes() int {
	e.wsMu.Lock()
	n := 0
	for _, ws := range e.free {
		n += 4 * (cap(ws.in) + cap(ws.h1))
	}
	e.wsMu.Unlock()
	return n + e.cpu.ScratchBytes()
}

// Close stops the workers after running Encode calls return.
func (e *Encoder) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.closed {
		e.closed = true
		e.cpu.Close()
	}
	return nil
}

// FLOPs is the number of floating-point operations (multiply and add counted
// separately) of one window: the GEMMs and attention products.
func FLOPs(c staged.Config) float64 {
	d, f, m, p := float64(c.DModel), float64(c.EncoderFFNDim), float64(c.NumMelBins), float64(c.MaxSourcePositions)
	stem := 2*(2*p)*(3*m)*d + 2*p*(3*d)*d
	layer := 2*p*d*(4*d+2*f) + 2*2*p*p*d
	return stem + float64(c.EncoderLayers)*layer
}

// OpFLOPs is the floating-point work of op per window (the GEMMs and
// attention products; zero for ops without them), as FLOPs counts it.
func OpFLOPs(c staged.Config, op Op) float64 {
	d, f, m, p := float64(c.DModel), float64(c.EncoderFFNDim), float64(c.NumMelBins), float64(c.MaxSourcePositions)
	l := float64(c.EncoderLayers)
	switch op {
	case OpConv:
		return 2*(2*p)*(3*m)*d + 2*p*(3*d)*d
	case OpAttention:
		return l * (2*p*d*4*d + 2*2*p*p*d)
	case OpMLP:
		return l * 2 * p * d * 2 * f
	}
	return 0
}

var errClosed = errors.New("model: encoder is closed")

// Encode runs the encoder on mel, a batch of normalised log-mel windows
// [B, n_mels, frames] (Whisper's log_mel_spectrogram output), and returns the
// last hidden state [B, max_source_positions, d_model].
//
// frames may be fewer than 2·max_source_positions (3000 for 30 s). Whisper
// pads the AUDIO with zeros to 30 s before computing log-mel, and log-mel of
// silence is not zero after normalisation: it is max(max(mel) − 2, −1.5)
// ((max(log10 S, max − 8) + 4)/4 with log10 of the 1e−10 floor). Encode pads
// missing frames of each window with that value, which equals Whisper's
// padding for every frame whose STFT window lies past the end of the audio;
// the one or two frames straddling the end differ. For exact results pass
// frames computed from audio padded to 30 s (then frames = 3000).
//
// Input with the wrong rank or n_mels, more frames than the model takes, or
// NaN/Inf values is rejected with an error naming the first bad element.
// ctx is checked before each window of the batch (a window, ~0.1–0.3 s for
// whisper-base on two cores, is not interrupted).
func (e *Encoder) Encode(ctx context.Context, mel Tensor) (Tensor, error) {
	if err := e.checkInput(mel); err != nil {
		return Tensor{}, err
	}
	b, p, d := mel.Shape[0], e.cfg.MaxSourcePositions, e.cfg.DModel
	out := Tensor{Shape: []int{b, p, d}, Data: make([]float32, b*p*d)}
	if err := e.EncodeInto(ctx, out.Data, mel); err != nil {
		return Tensor{}, err
	}
	return out, nil
}

// EncodeInto is Encode writing the hidden state into dst, which must hold
// exactly B·max_source_positions·d_model values ([B, positions, d_model] in
// row-major order). A caller that reuses dst across calls allocates nothing
// per window in steady state. dst also holds each window's residual stream
// while it is encoded, so after an error its contents are unspecified.
func (e *Encoder) EncodeInto(ctx context.Context, dst []float32, mel Tensor) error {
	if err := e.checkInput(mel); err != nil {
		return err
	}
	b, nm, frames := mel.Shape[0], mel.Shape[1], mel.Shape[2]
	p, d := e.cfg.MaxSourcePositions, e.cfg.DModel
	if len(dst) != b*p*d {
		return fmt.Errorf("encode: output holds %d values, [%d %d %d] needs %d", len(dst), b, p, d, b*p*d)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return errClosed
	}
	ws := e.workspace()
	defer e.release(ws)
	for i := range b {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("encode window %d of %d: %w", i+1, b, err)
		}
		win := mel.Data[i*nm*frames : (i+1)*nm*frames]
		if err := e.window(ws, win, frames, dst[i*p*d:(i+1)*p*d]); err != nil {
			return fmt.Errorf("encode window %d of %d: %w", i+1, b, err)
		}
	}
	return nil
}

func (e *Encoder) checkInput(mel Tensor) error {
	if len(mel.Shape) != 3 {
		return fmt.Errorf("mel: shape %v, want [batch, %d mel bins, frames]", mel.Shape, e.cfg.NumMelBins)
	}
	b, nm, frames := mel.Shape[0], mel.Shape[1], mel.Shape[2]
	switch maxFrames := 2 * e.cfg.MaxSourcePositions; {
	case b < 1:
		return fmt.Errorf("mel: batch %d, want ≥ 1", b)
	case nm != e.cfg.NumMelBins:
		return fmt.Errorf("mel: %d mel bins (shape %v), model wants %d", nm, mel.Shape, e.cfg.NumMelBins)
	case frames < 1 || frames > maxFrames:
		return fmt.Errorf("mel: %d frames (shape %v), model takes 1 to %d", frames, mel.Shape, maxFrames)
	case len(mel.Data) != b*nm*frames:
		return fmt.Errorf("mel: shape %v holds %d values, data has %d", mel.Shape, b*nm*frames, len(mel.Data))
	}
	for i, v := range mel.Data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("mel[%d][%d][%d] is %v: input must be finite", i/(nm*frames), i/frames%nm, i%frames, v)
		}
	}
	return nil
}

// Op names the parts of the forward pass timed by OpTimes.
type Op int

// The timed parts of the forward pass.
const (
	OpConv        Op = iota // conv1 and conv2 as im2col GEMMs
	OpLayerNorm             // the final LayerNorm
	OpAttention             // LN1, q/k/v projection, attention, output projection
	OpMLP                   // LN2, fc1, GELU, fc2
	OpElementwise           // the stem's input transpose, GELUs and positional table
	numOps
)

var opNames = [numOps]string{"conv (im2col GEMM)", "final layernorm", "ln1+attention+out proj", "ln2+mlp (fc1,gelu,fc2)", "stem gelu/pos/pad"}

// String names the op as the bench report prints it.
func (o Op) String() string { return opNames[o] }

// OpTime is the time spent in one op.
type OpTime struct {
	// Wall is elapsed time.
	Wall time.Duration
	// CPU is the process's CPU time meanwhile (all threads; on a machine
	// shared with other work it shows the op's own cost better than Wall).
	CPU time.Duration
}

// OpTimes returns the time spent in each op since the last reset, summed over
// all Encode calls (with concurrent calls, the CPU times overlap).
func (e *Encoder) OpTimes() map[Op]OpTime {
	m := make(map[Op]OpTime, numOps)
	for i := range numOps {
		m[i] = OpTime{Wall: time.Duration(e.times[i].Load()), CPU: time.Duration(e.cpuNS[i].Load())}
	}
	return m
}

// ResetOpTimes zeroes the op timers.
func (e *Encoder) ResetOpTimes() {
	for i := range e.times {
		e.times[i].Store(0)
		e.cpuNS[i].Store(0)
	}
}

func (e *Encoder) timed(op Op, f func() error) error {
	t, c := time.Now(), processCPU()
	err := f()
	e.times[op].Add(int64(time.Since(t)))
	e.cpuNS[op].Add(int64(processCPU() - c))
	return err
}

// processCPU is the user+system CPU time of the process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
