package backend

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
	"github.com/xdna-whisper/xdna-whisper/encoder/kernels"
)

// backends lists every CPU configuration this machine can run: each ISA up
// to the detected one, with fp32 activations, and bf16 where supported.
func backends(t *testing.T) []*CPU {
	var out []*CPU
	for isa := kernels.Portable; isa <= kernels.Detect(); isa++ {
		for _, act := range []Precision{FP32, BF16} {
			c, err := NewCPU(isa, act, 2)
			if err != nil {
				continue
			}
			t.Cleanup(c.Close)
			out = append(out, c)
		}
	}
	return out
}

func randF32(r *rand.Rand, n int, scale float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64() * scale)
	}
	return s
}

func randBF16(r *rand.Rand, n int, scale float64) ([]uint16, []float64) {
	b, f := make([]uint16, n), make([]float64, n)
	for i := range b {
		b[i] = bf16.FromFloat32FTZ(float32(r.NormFloat64() * scale))
		f[i] = float64(bf16.ToFloat32(b[i]))
	}
	return b, f
}

// tol is the relative error allowed for an activation precision: bf16
// activations carry 8 significant bits into each product.
func tol(p Precision) float64 {
	if p == BF16 {
		return 1.5e-2
	}
	return 2e-5
}

// closeRel compares got and want with an error bound relative to the largest |want|.
func closeRel(t *testing.T, what string, got []float32, want []float64, rtol float64) {
	t.Helper()
	var scale, worst float64
	for _, w := range want {
		scale = math.Max(scale, math.Abs(w))
	}
	for i := range want {
		worst = math.Max(worst, math.Abs(float64(got[i])-want[i]))
		if math.IsNaN(float64(got[i])) {
			t.Fatalf("%s[%d] is NaN", what, i)
		}
	}
	if worst > rtol*scale {
		t.Fatalf("%s: max |Δ| %.3g > %.3g (max |ref| %.3g)", what, worst, rtol*scale, scale)
	}
}

func linearRef(x []float64, n, in int, w []float64, out int, b []float32) []float64 {
	y := make([]float64, n*out)
	for i := range n {
		for o := range out {
			s := 0.0
			if b != nil {
				s = float64(b[o])
			}
			for k := range in {
				s += x[i*in+k] * w[o*in+k]
			}
			y[i*out+o] = s
		}
	}
	return y
}

// roundBF16 rounds each value to float32, then to bf16.
func roundBF16(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(bf16.ToFloat32(bf16.FromFloat32FTZ(float32(x))))
	}
	return out
}

func f64(s []float32) []float64 {
	out := make([]float64, len(s))
	for i, v := range s {
		out[i] = float64(v)
	}
	return out
}

func TestLinear(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, c := range backends(t) {
		for _, sh := range []struct{ n, in, out int }{{1, 8, 8}, {15, 33, 47}, {130, 64, 96}, {230, 240, 64}} {
			t.Run(fmt.Sprintf("%s/%dx%dx%d", c.Name(), sh.n, sh.in, sh.out), func(t *testing.T) {
				wb, w := randBF16(r, sh.out*sh.in, 0.2)
				pw, err := c.Pack(wb, sh.out, sh.in)
				if err != nil {
					t.Fatal(err)
				}
				x := randF32(r, sh.n*sh.in, 1)
				bias := randF32(r, sh.out, 1)
				y0 := randF32(r, sh.n*sh.out, 1)
				want := linearRef(f64(x), sh.n, sh.in, w, sh.out, bias)
				for i := range want {
					want[i] += float64(y0[i])
				}
				y := append([]float32(nil), y0...)
				err = c.Linear(Mat{y, sh.n, sh.out, sh.out}, Mat{x, sh.n, sh.in, sh.in}, nil, pw, bias, true)
				if err != nil {
					t.Fatal(err)
				}
				closeRel(t, "linear", y, want, tol(c.act))
			})
		}
	}
}

// TestLinearOverlappingRows checks the im2col view a convolution uses: rows
// of 3·c values starting every 2·c values (kernel 3, stride 2).
func TestLinearOverlappingRows(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	const ch, outRows, out = 16, 20, 32
	sig := randF32(r, (2*outRows+1)*ch, 1)
	wb, w := randBF16(r, out*3*ch, 0.2)
	x := make([]float64, outRows*3*ch)
	for t := range outRows {
		for k := range 3 * ch {
			x[t*3*ch+k] = float64(sig[2*t*ch+k])
		}
	}
	want := linearRef(x, outRows, 3*ch, w, out, nil)
	for _, c := range backends(t) {
		pw, _ := c.Pack(wb, out, 3*ch)
		y := make([]float32, outRows*out)
		if err := c.Linear(Mat{y, outRows, out, out}, Mat{sig, outRows, 3 * ch, 2 * ch}, nil, pw, nil, false); err != nil {
			t.Fatal(err)
		}
		closeRel(t, c.Name(), y, want, tol(c.act))
	}
}

// layerNormRef normalises each row of x [n][d] in float64.
func layerNormRef(x []float32, n, d int, norm *Norm) []float64 {
	out := make([]float64, n*d)
	for i := range n {
		row := x[i*d : (i+1)*d]
		var mean, v float64
		for _, e := range row {
			mean += float64(e)
		}
		mean /= float64(d)
		for _, e := range row {
			v += (float64(e) - mean) * (float64(e) - mean)
		}
		v /= float64(d)
		for j, e := range row {
			out[i*d+j] = (float64(e)-mean)/math.Sqrt(v+float64(norm.Eps))*float64(norm.Weight[j]) + float64(norm.Bias[j])
		}
	}
	return out
}

func TestMLP(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	const n, d, ffn = 130, 48, 192
	w1b, w1 := randBF16(r, ffn*d, 0.15)
	w2b, w2 := randBF16(r, d*ffn, 0.07)
	b1, b2 := randF32(r, ffn, 0.5), randF32(r, d, 0.5)
	x := randF32(r, n*d, 1)
	for i := range x {
		x[i] += 3 // an offset the norm removes
	}
	y0 := randF32(r, n*d, 1)
	ln := &Norm{Weight: randF32(r, d, 1), Bias: randF32(r, d, 1), Eps: 1e-5}
	for _, norm := range []*Norm{nil, ln} {
		in := f64(x)
		if norm != nil {
			in = layerNormRef(x, n, d, norm)
		}
		h := linearRef(in, n, d, w1, ffn, b1)
		for i, v := range h {
			h[i] = 0.5 * v * math.Erfc(-v/math.Sqrt2)
		}
		want := linearRef(h, n, ffn, w2, d, b2)
		for i := range want {
			want[i] += float64(y0[i])
		}
		for _, c := range backends(t) {
			p1, _ := c.Pack(w1b, ffn, d)
			p2, _ := c.Pack(w2b, d, ffn)
			y := append([]float32(nil), y0...)
			if err := c.MLP(Mat{y, n, d, d}, Mat{x, n, d, d}, norm, p1, b1, p2, b2); err != nil {
				t.Fatal(err)
			}
			closeRel(t, fmt.Sprintf("%s/norm=%v", c.Name(), norm != nil), y, want, tol(c.act))
			if norm == nil {
				continue
			}
			// The same norm through Linear (the q/k/v path).
			y = make([]float32, n*ffn)
			if err := c.Linear(Mat{y, n, ffn, ffn}, Mat{x, n, d, d}, norm, p1, b1, false); err != nil {
				t.Fatal(err)
			}
			closeRel(t, c.Name()+"/linear+norm", y, linearRef(in, n, d, w1, ffn, b1), tol(c.act))
		}
	}
}

// attentionRef is softmax(scale·q·kᵀ)·v per head of qkv [n][3d], in float64.
func attentionRef(qkv []float64, n, d, heads int, scale float64) []float64 {
	hd := d / heads
	out := make([]float64, n*d)
	s := make([]float64, n)
	for h := range heads {
		for i := range n {
			m := math.Inf(-1)
			for j := range n {
				dot := 0.0
				for k := range hd {
					dot += qkv[i*3*d+h*hd+k] * qkv[j*3*d+d+h*hd+k]
				}
				s[j] = dot * scale
				m = math.Max(m, s[j])
			}
			sum := 0.0
			for j := range n {
				s[j] = math.Exp(s[j] - m)
				sum += s[j]
			}
			for k := range hd {
				acc := 0.0
				for j := range n {
					acc += s[j] * qkv[j*3*d+2*d+h*hd+k]
				}
				out[i*d+h*hd+k] = acc / sum
			}
		}
	}
	return out
}

// TestSelfAttention checks the fused block (norm, q/k/v projection,
// attention, output projection added to the residual) against float64 on
// shapes with odd head dims and d_model, one and several key blocks (a
// last block of one key), and rows whose growing scale makes the running
// maximum of the online softmax move from block to block.
func TestSelfAttention(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	shapes := []struct{ n, d, heads int }{
		{1, 8, 2}, {29, 64, 4}, {51, 96, 3}, {100, 128, 2}, {13, 15, 3}, {530, 32, 2}, {257, 16, 1}, {256, 16, 1}, {258, 16, 1}, {255, 16, 1},
	}
	for _, sh := range shapes {
		n, d := sh.n, sh.d
		// Projections that keep q, k, v near unit scale, as trained models do:
		// with bf16 q and k the score error grows with the scores.
		wqb, wq := randBF16(r, 3*d*d, 1/math.Sqrt(float64(d)))
		wob, wo := randBF16(r, d*d, 1/math.Sqrt(float64(d)))
		bq, bo := randF32(r, 3*d, 0.5), randF32(r, d, 0.5)
		x := randF32(r, n*d, 1)
		ln := &Norm{Weight: randF32(r, d, 1), Bias: randF32(r, d, 1), Eps: 1e-5}
		for _, norm := range []*Norm{nil, ln} {
			in := f64(x)
			if norm != nil {
				in = layerNormRef(x, n, d, norm)
			} else {
				for i := range n { // later keys score higher: the running max moves
					for j := range d {
						in[i*d+j] *= 1 + 2*float64(i)/float64(n)
					}
				}
			}
			xs := make([]float32, n*d)
			for i := range xs {
				xs[i] = float32(in[i])
			}
			if norm != nil {
				copy(xs, x)
			}
			scale := 1 / math.Sqrt(float64(d/sh.heads))
			// want[act]: float64 with the activations rounded where the
			// backend rounds them (bf16: the GEMM inputs, q, k, v and the
			// attention output; the probabilities' rounding is left out).
			want := map[Precision][]float64{}
			for _, act := range []Precision{FP32, BF16} {
				rnd := func(v []float64) []float64 { return v }
				if act == BF16 {
					rnd = roundBF16
				}
				qkv := linearRef(rnd(in), n, d, wq, 3*d, bq)
				for i := range n {
					for j := range d {
						qkv[i*3*d+j] = float64(float32(qkv[i*3*d+j]) * float32(scale))
					}
				}
				want[act] = linearRef(rnd(attentionRef(rnd(qkv), n, d, sh.heads, 1)), n, d, wo, d, bo)
			}
			for _, c := range backends(t) {
				t.Run(fmt.Sprintf("%s/n%d_d%d_h%d/norm=%v", c.Name(), n, d, sh.heads, norm != nil), func(t *testing.T) {
					pq, err := c.Pack(wqb, 3*d, d)
					if err != nil {
						t.Fatal(err)
					}
					po, err := c.Pack(wob, d, d)
					if err != nil {
						t.Fatal(err)
					}
					y := append([]float32(nil), xs...)
					if err := c.SelfAttention(Mat{y, n, d, d}, norm, pq, bq, po, bo, sh.heads, float32(scale)); err != nil {
						t.Fatal(err)
					}
					for i := range y {
						y[i] -= xs[i] // the block's contribution
					}
					rtol := 1e-5
					if c.act == BF16 {
						rtol = 6e-3 // rounding flips (a bf16 ulp is 2⁻⁸) and the probabilities
					}
					closeRel(t, "attention", y, want[c.act], rtol)
				})
			}
		}
	}
}

func TestBackendErrors(t *testing.T) {
	c, err := NewCPU(kernels.Portable, FP32, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w, _ := c.Pack(make([]uint16, 4*6), 4, 6)
	wqkv, _ := c.Pack(make([]uint16, 12*4), 12, 4)
	wout, _ := c.Pack(make([]uint16, 4*4), 4, 4)
	cases := []struct {
		name string
		err  error
	}{
		{"pack size", func() error { _, err := c.Pack(make([]uint16, 5), 2, 3); return err }()},
		{"linear cols", c.Linear(Mat{make([]float32, 8), 2, 4, 4}, Mat{make([]float32, 10), 2, 5, 5}, nil, w, nil, false)},
		{"linear out", c.Linear(Mat{make([]float32, 6), 2, 3, 3}, Mat{make([]float32, 12), 2, 6, 6}, nil, w, nil, false)},
		{"linear short", c.Linear(Mat{make([]float32, 8), 2, 4, 4}, Mat{make([]float32, 11), 2, 6, 6}, nil, w, nil, false)},
		{"norm size", c.Linear(Mat{make([]float32, 8), 2, 4, 4}, Mat{make([]float32, 12), 2, 6, 6}, &Norm{Weight: make([]float32, 5), Bias: make([]float32, 6)}, w, nil, false)},
		{"attention heads", c.SelfAttention(Mat{make([]float32, 8), 2, 4, 4}, nil, wqkv, nil, wout, nil, 3, 1)},
		{"attention qkv shape", c.SelfAttention(Mat{make([]float32, 8), 2, 4, 4}, nil, wout, nil, wout, nil, 2, 1)},
		{"attention out shape", c.SelfAttention(Mat{make([]float32, 8), 2, 4, 4}, nil, wqkv, nil, wqkv, nil, 2, 1)},
		{"attention input", c.SelfAttention(Mat{make([]float32, 7), 2, 4, 4}, nil, wqkv, nil, wout, nil, 2, 1)},
		{"attention bias", c.SelfAttention(Mat{make([]float32, 8), 2, 4, 4}, nil, wqkv, make([]float32, 4), wout, nil, 2, 1)},
	}
	for _, tc := range cases {
		if tc.err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if _, err := NewCPU(kernels.AVX2, BF16, 1); err == nil {
		t.Error("bf16 activations on AVX2 accepted")
	}
}

// TestConcurrentCalls runs operations from several goroutines at once on one
// backend (run with -race): results equal the sequential ones.
func TestConcurrentCalls(t *testing.T) {
	for _, act := range []Precision{FP32, BF16} {
		c, err := NewCPU(kernels.Detect(), act, 2)
		if err != nil {
			continue // bf16 needs AVX512_BF16
		}
		t.Run(c.Name(), func(t *testing.T) { testConcurrent(t, c) })
		c.Close()
	}
}

func testConcurrent(t *testing.T, c *CPU) {
	r := rand.New(rand.NewPCG(5, 5))
	const n, d, heads = 300, 32, 2
	wb, _ := randBF16(r, d*d, 0.2)
	pw, _ := c.Pack(wb, d, d)
	wq, _ := randBF16(r, 3*d*d, 0.2)
	pq, _ := c.Pack(wq, 3*d, d)
	bq, bo := randF32(r, 3*d, 0.5), randF32(r, d, 0.5)
	norm := &Norm{Weight: randF32(r, d, 1), Bias: randF32(r, d, 1), Eps: 1e-5}
	run := func(x []float32) ([]float32, error) {
		y := append([]float32(nil), x...)
		if err := c.SelfAttention(Mat{y, n, d, d}, norm, pq, bq, pw, bo, heads, 0.25); err != nil {
			return nil, err
		}
		if err := c.Linear(Mat{y, n, d, d}, Mat{x, n, d, d}, nil, pw, nil, true); err != nil {
			return nil, err
		}
		return y, nil
	}
	inputs := make([][]float32, 4)
	want := make([][]float32, 4)
	for i := range inputs {
		inputs[i] = randF32(r, n*d, 1)
		var err error
		if want[i], err = run(inputs[i]); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error)
	for i := range inputs {
		go func() {
			for range 5 {
				got, err := run(inputs[i])
				if err != nil {
					done <- err
					return
				}
				for j := range got {
					if got[j] != want[i][j] {
						done <- fmt.Errorf("call %d: value %d = %g, sequential %g", i, j, got[j], want[i][j])
						return
					}
				}
			}
			done <- nil
		}()
	}
	for range inputs {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
