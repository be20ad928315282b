package decoder

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
	"github.com/xdna-whisper/xdna-whisper/encoder/safetensors"
)

// Source hands out the decoder's tensors by their names relative to the
// decoder ("embed_tokens.weight", "layers.0.fc1.weight", …) as bf16 bits.
// The slice may be a view valid until the source is closed; Load copies
// what it keeps.
type Source interface {
	Tensor(name string) (shape []int, data []uint16, err error)
}

// Releaser is a Source whose views are mapped from a file: once Load has
// copied a tensor it calls Release, so the file's pages do not stay
// resident beside the packed copy (for whisper-base, 100 MB while loading).
type Releaser interface {
	Release(name string) error
}

// HF is a Hugging Face model directory read as a Source: config.json and
// model.safetensors, or sharded model-0000N-of-0000M.safetensors with
// model.safetensors.index.json. Tensors are found under "model.decoder."
// (WhisperForConditionalGeneration) or "decoder." (WhisperModel); F32 and
// F16 values are rounded to bf16 (to nearest, ties to even), BF16 ones are
// viewed in place.
type HF struct {
	dir    string
	files  []*safetensors.File
	where  map[string]*safetensors.File // full tensor name → file
	prefix string
}

// OpenHF opens the safetensors of the Hugging Face model directory dir.
func OpenHF(dir string) (*HF, error) {
	names, err := shardNames(dir)
	if err != nil {
		return nil, err
	}
	h := &HF{dir: dir, where: map[string]*safetensors.File{}}
	for _, n := range names {
		f, err := safetensors.Open(filepath.Join(dir, n))
		if err != nil {
			_ = h.Close() // read-only mappings: the open error is the one to report
			return nil, fmt.Errorf("decoder weights: %w", err)
		}
		h.files = append(h.files, f)
		for _, t := range f.Tensors() {
			h.where[t.Name] = f
		}
	}
	for _, p := range []string{"model.decoder.", "decoder."} {
		if _, ok := h.where[p+"embed_tokens.weight"]; ok {
			h.prefix = p
			break
		}
	}
	if h.prefix == "" {
		_ = h.Close() // read-only mappings: nothing to flush
		return nil, fmt.Errorf("decoder weights in %s: no model.decoder.embed_tokens.weight (or decoder.embed_tokens.weight): not a Whisper model with a decoder", dir)
	}
	return h, nil
}

// shardNames lists the safetensors files of dir: those of the sharded
// index when there is one, else model.safetensors.
func shardNames(dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json"))
	if os.IsNotExist(err) {
		return []string{"model.safetensors"}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("decoder weights: %w", err)
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("decoder weights: model.safetensors.index.json in %s: %w", dir, err)
	}
	set := map[string]bool{}
	for _, f := range idx.WeightMap {
		if filepath.Base(f) != f {
			return nil, fmt.Errorf("decoder weights: index names shard %q outside %s", f, dir)
		}
		set[f] = true
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("decoder weights: model.safetensors.index.json in %s maps no tensors", dir)
	}
	names := make([]string, 0, len(set))
	for f := range set {
		names = append(names, f)
	}
	sort.Strings(names)
	return names, nil
}

// Tensor returns the decoder tensor name (relative to the decoder) as bf16.
func (h *HF) Tensor(name string) ([]int, []uint16, error) {
	return h.full(h.prefix + name)
}

func (h *HF) full(name string) ([]int, []uint16, error) {
	f, ok := h.where[name]
	if !ok {
		return nil, nil, fmt.Errorf("decoder weights in %s: no tensor %s", h.dir, name)
	}
	t, err := f.Tensor(name)
	if err != nil {
		return nil, nil, err
	}
	var out []uint16
	switch t.DType {
	case safetensors.BF16:
		if out, err = t.Uint16s(); err != nil {
			return nil, nil, err
		}
	case safetensors.F32:
		out = make([]uint16, len(t.Data)/4)
		for i := range out {
			out[i] = bf16.FromFloat32(math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:])))
		}
	case safetensors.F16:
		out = make([]uint16, len(t.Data)/2)
		for i := range out {
			out[i] = bf16.FromFloat32(f16ToF32(binary.LittleEndian.Uint16(t.Data[2*i:])))
		}
	default:
		return nil, nil, fmt.Errorf("decoder weights in %s: tensor %s is %s, want F32, F16 or BF16", h.dir, name, t.DType)
	}
	return slices.Clone(t.Shape), out, nil
}

// Release drops the resident pages of the decoder tensor name (relative to
// the decoder) from the process once it has been copied
// (safetensors.File.Release).
func (h *HF) Release(name string) error {
	f, ok := h.where[h.prefix+name]
	if !ok {
		return fmt.Errorf("decoder weights in %s: no tensor %s", h.dir, h.prefix+name)
	}
	return f.Release(h.prefix + name)
}

// checkTied verifies that an output projection stored beside the token
// embedding (proj_out.weight, normally left out as tied) is the same
// matrix: this decoder computes logits through the embedding.
func (h *HF) checkTied() error {
	if _, ok := h.where["proj_out.weight"]; !ok {
		return nil
	}
	ps, p, err := h.full("proj_out.weight")
	if err != nil {
		return err
	}
	es, e, err := h.Tensor("embed_tokens.weight")
	if err != nil {
		return err
	}
	if !slices.Equal(ps, es) || !slices.Equal(p, e) {
		return fmt.Errorf("decoder weights in %s: proj_out.weight %v differs from embed_tokens.weight %v: untied output projections are not supported", h.dir, ps, es)
	}
	return nil
}

// Close unmaps the files.
func (h *HF) Close() error {
	var first error
	for _, f := range h.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	h.files = nil
	return first
}

// f16ToF32 widens IEEE half precision to float32 (exact).
func f16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp == 0 && man == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: normalise
		e := uint32(127 - 15 + 1)
		for man&0x400 == 0 {
			man <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (man&0x3ff)<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | man<<13)
}
