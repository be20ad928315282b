package model

import (
	"fmt"
	"slices"

	"github.com/xdna-whisper/xdna-whisper/encoder/backend"
	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

// source reads tensors of the staged model, checking shapes, and remembers
// the views it handed out so their pages can leave the resident set once
// packed (drop).
type source struct {
	m     *staged.Model
	views [][]uint16
}

// drop releases the pages of every view handed out so far.
func (s *source) drop() {
	for _, v := range s.views {
		backend.DropPages(v)
	}
	s.views = s.views[:0]
}

func (s *source) get(name string, shape ...int) ([]uint16, error) {
	t, err := s.m.Tensor(name)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(t.Shape, shape) {
		return nil, fmt.Errorf("tensor %s: shape %v, want %v", name, t.Shape, shape)
	}
	if n := numel(shape); len(t.Data) != n {
		return nil, fmt.Errorf("tensor %s: %d values, shape %v wants %d", name, len(t.Data), shape, n)
	}
	s.views = append(s.views, t.Data)
	return t.Data, nil
}

// vec reads a 1-D tensor as float32 (bf16 widens exactly).
func (s *source) vec(name string, n int) ([]float32, error) {
	b, err := s.get(name, n)
	if err != nil {
		return nil, err
	}
	out := make([]float32, n)
	for i, v := range b {
		out[i] = bf16.ToFloat32(v)
	}
	s.drop()
	return out, nil
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func (e *Encoder) pack(w []uint16, out, in int) (backend.Weight, error) {
	pw, err := e.be.Pack(w, out, in)
	if err != nil {
		return nil, err
	}
	e.packed += pw.Bytes()
	return pw, nil
}

// convWeight reads a conv weight [out][in][3] and reorders it to
// [out][tap][in], the k order of the im2col view (three consecutive
// time-major input rows).
func (e *Encoder) convWeight(s *source, name string, out, in int) (backend.Weight, error) {
	w, err := s.get(name, out, in, 3)
	if err != nil {
		return nil, err
	}
	r := make([]uint16, len(w))
	for o := range out {
		for c := range in {
			for k := range 3 {
				r[o*3*in+k*in+c] = w[o*in*3+c*3+k]
			}
		}
	}
	s.drop()
	return e.pack(r, out, 3*in)
}

func (e *Encoder) load(sm *staged.Model) error {
	c := e.cfg
	if c.ActivationFunction != "" && c.ActivationFunction != "gelu" {
		return fmt.Errorf("config: activation_function %q, this encoder implements gelu", c.ActivationFunction)
	}
	e.eps = float32(c.LayerNormEps)
	if e.eps == 0 {
		e.eps = 1e-5
	}
	s := &source{m: sm}
	d, f, nm, p := c.DModel, c.EncoderFFNDim, c.NumMelBins, c.MaxSourcePositions
	var err error
	if e.conv1, err = e.convWeight(s, "conv1.weight", d, nm); err != nil {
		return err
	}
	if e.conv2, err = e.convWeight(s, "conv2.weight", d, d); err != nil {
		return err
	}
	if e.conv1b, err = s.vec("conv1.bias", d); err != nil {
		return err
	}
	if e.conv2b, err = s.vec("conv2.bias", d); err != nil {
		return err
	}
	pos, err := s.get("embed_positions.weight", p, d)
	if err != nil {
		return err
	}
	e.pos = slices.Clone(pos) // added in bf16 (AddBF16): half the memory of float32
	e.lnW, err = s.vec("layer_norm.weight", d)
	if err != nil {
		return err
	}
	if e.lnB, err = s.vec("layer_norm.bias", d); err != nil {
		return err
	}
	s.drop()
	e.layers = make([]layer, c.EncoderLayers)
	for i := range e.layers {
		e.layers[i].ln1.Eps, e.layers[i].ln2.Eps = e.eps, e.eps
	}
	stack := make([]uint16, 3*d*d) // q, k, v stacked, reused by every layer
	for i := range e.layers {
		if err := e.loadLayer(s, i, d, f, stack); err != nil {
			return err
		}
	}
	e.packed += 2*len(e.pos) + 4*(4*d+len(e.layers)*(9*d+f))
	e.cpu.PackDone()
	return nil
}

// loadLayer packs block i. Each tensor's source pages leave the resident
// set as soon as it is copied (source.drop), so loading holds at most one
// tensor of the file besides the packed weights.
func (e *Encoder) loadLayer(s *source, i, d, f int, qkv []uint16) error {
	l := &e.layers[i]
	p := fmt.Sprintf("layers.%d.", i)
	vecs := []struct {
		dst  *[]float32
		name string
		n    int
	}{
		{&l.ln1.Weight, "self_attn_layer_norm.weight", d}, {&l.ln1.Bias, "self_attn_layer_norm.bias", d},
		{&l.ln2.Weight, "final_layer_norm.weight", d}, {&l.ln2.Bias, "final_layer_norm.bias", d},
		{&l.outB, "self_attn.out_proj.bias", d}, {&l.fc1B, "fc1.bias", f}, {&l.fc2B, "fc2.bias", d},
	}
	for _, v := range vecs {
		var err error
		if *v.dst, err = s.vec(p+v.name, v.n); err != nil {
			return err
		}
	}
	// q, k, v stacked into one [3d][d] projection; k_proj has no bias.
	for j, n := range []string{"q_proj", "k_proj", "v_proj"} {
		w, err := s.get(p+"self_attn."+n+".weight", d, d)
		if err != nil {
			return err
		}
		copy(qkv[j*d*d:], w)
		s.drop()
	}
	qb, err := s.vec(p+"self_attn.q_proj.bias", d)
	if err != nil {
		return err
	}
	vb, err := s.vec(p+"self_attn.v_proj.bias", d)
	if err != nil {
		return err
	}
	l.qkvB = slices.Concat(qb, make([]float32, d), vb)
	if l.qkv, err = e.pack(qkv, 3*d, d); err != nil {
		return err
	}
	mats := []struct {
		dst     *backend.Weight
		name    string
		out, in int
	}{{&l.out, "self_attn.out_proj.weight", d, d}, {&l.fc1, "fc1.weight", f, d}, {&l.fc2, "fc2.weight", d, f}}
	for _, m := range mats {
		w, err := s.get(p+m.name, m.out, m.in)
		if err != nil {
			return err
		}
		if *m.dst, err = e.pack(w, m.out, m.in); err != nil {
			return err
		}
		s.drop()
	}
	return nil
}
