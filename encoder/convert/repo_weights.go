package convert

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/x448/float16"
	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
	"github.com/xdna-whisper/xdna-whisper/encoder/safetensors"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

// repoWeightFiles are the memory-mapped safetensors files of a repository.
type repoWeightFiles struct {
	files []*safetensors.File
	where map[string]*safetensors.File // full tensor name → its file
	shard map[*safetensors.File]string // file → shard name
}

// openRepoWeights maps the shards and, for a sharded repository, checks that
// every tensor of the index is in the shard the index names.
func openRepoWeights(dir string, shards []string) (*repoWeightFiles, error) {
	w := &repoWeightFiles{where: map[string]*safetensors.File{}, shard: map[*safetensors.File]string{}}
	for _, s := range shards {
		f, err := safetensors.Open(filepath.Join(dir, s))
		if err != nil {
			w.close()
			return nil, err
		}
		w.files = append(w.files, f)
		w.shard[f] = s
		for _, t := range f.Tensors() {
			if prev, dup := w.where[t.Name]; dup {
				w.close()
				return nil, fmt.Errorf("tensor %s is in both %s and %s", t.Name, w.shard[prev], s)
			}
			w.where[t.Name] = f
		}
	}
	if len(shards) == 1 && shards[0] == repoWeights {
		return w, nil
	}
	if err := w.checkIndex(dir); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

func (w *repoWeightFiles) checkIndex(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, repoIndex))
	if err != nil {
		return err
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return fmt.Errorf("%s: %w", repoIndex, err)
	}
	for name, s := range idx.WeightMap {
		f, ok := w.where[name]
		if !ok {
			return fmt.Errorf("%s maps tensor %s to %s, which does not hold it", repoIndex, name, s)
		}
		if w.shard[f] != s {
			return fmt.Errorf("%s maps tensor %s to %s, found in %s", repoIndex, name, s, w.shard[f])
		}
	}
	return nil
}

func (w *repoWeightFiles) close() {
	for _, f := range w.files {
		_ = f.Close() // read only: nothing to flush
	}
	w.files = nil
}

// prefixes finds the encoder's and decoder's name prefixes:
// "model.encoder."/"model.decoder." (WhisperForConditionalGeneration) or
// "encoder."/"decoder." (WhisperModel).
func (w *repoWeightFiles) prefixes() (enc, dec string, err error) {
	for _, p := range []string{"model.", ""} {
		if _, ok := w.where[p+"encoder.conv1.weight"]; ok {
			enc = p + "encoder."
			break
		}
	}
	for _, p := range []string{"model.", ""} {
		if _, ok := w.where[p+"decoder.embed_tokens.weight"]; ok {
			dec = p + "decoder."
			break
		}
	}
	switch {
	case enc == "":
		return "", "", fmt.Errorf("no model.encoder.conv1.weight (or encoder.conv1.weight): not a Whisper model's weights")
	case dec == "":
		return "", "", fmt.Errorf("no model.decoder.embed_tokens.weight (or decoder.embed_tokens.weight): the weights hold no Whisper decoder (stage an encoder .onnx for an encoder-only service)")
	}
	return enc, dec, nil
}

// checkTied verifies that an output projection stored beside the token
// embedding (proj_out.weight) is the same matrix: Whisper ties them, and the
// staged decoder computes logits through the embedding.
func (w *repoWeightFiles) checkTied(decPrefix string) error {
	pf, ok := w.where["proj_out.weight"]
	if !ok {
		return nil
	}
	p, _ := pf.Tensor("proj_out.weight")
	e, _ := w.where[decPrefix+"embed_tokens.weight"].Tensor(decPrefix + "embed_tokens.weight")
	if p.DType != e.DType || !slices.Equal(p.Shape, e.Shape) || string(p.Data) != string(e.Data) {
		return fmt.Errorf("proj_out.weight %s %v differs from %sembed_tokens.weight %s %v: untied output projections are not supported",
			p.DType, p.Shape, decPrefix, e.DType, e.Shape)
	}
	return nil
}

// check requires every tensor of specs under prefix, F32, F16 or BF16, with
// the shape config.json implies.
func (w *repoWeightFiles) check(prefix string, specs []staged.TensorSpec, enc staged.Config) error {
	var missing []string
	for _, s := range specs {
		f, ok := w.where[prefix+s.Name]
		if !ok {
			missing = append(missing, prefix+s.Name)
			continue
		}
		t, err := f.Tensor(prefix + s.Name)
		if err != nil {
			return err
		}
		switch t.DType {
		case safetensors.F32, safetensors.F16, safetensors.BF16:
		default:
			return fmt.Errorf("%s: tensor %s is %s, want F32, F16 or BF16", w.shard[f], prefix+s.Name, t.DType)
		}
		if !slices.Equal(t.Shape, s.Shape) {
			return fmt.Errorf("%s: tensor %s has shape %v, %s (d_model %d, encoder ffn %d, %d mels) implies %v",
				w.shard[f], prefix+s.Name, t.Shape, repoConfig, enc.DModel, enc.EncoderFFNDim, enc.NumMelBins, s.Shape)
		}
	}
	if len(missing) > 0 {
		more := ""
		if len(missing) > 3 {
			more = fmt.Sprintf(" and %d more", len(missing)-3)
			missing = missing[:3]
		}
		return fmt.Errorf("missing tensors %v%s that %s implies (layers and sizes come from config.json)", missing, more, repoConfig)
	}
	return nil
}

func (w *repoWeightFiles) tensor(name string) safetensors.Tensor {
	t, _ := w.where[name].Tensor(name) // checked by check
	return t
}

// precision is the source precision of the staged tensors: the least
// precise dtype among them.
func (w *repoWeightFiles) precision(encPrefix string, enc []staged.TensorSpec, decPrefix string, dec []staged.TensorSpec) staged.Precision {
	rank := map[safetensors.DType]int{safetensors.F32: 0, safetensors.BF16: 1, safetensors.F16: 2}
	worst := safetensors.F32
	for _, part := range []struct {
		prefix string
		specs  []staged.TensorSpec
	}{{encPrefix, enc}, {decPrefix, dec}} {
		for _, s := range part.specs {
			if d := w.tensor(part.prefix + s.Name).DType; rank[d] > rank[worst] {
				worst = d
			}
		}
	}
	return map[safetensors.DType]staged.Precision{safetensors.F32: staged.Float32, safetensors.BF16: staged.BFloat16, safetensors.F16: staged.Float16}[worst]
}

// bytes is the source size of the tensors of specs.
func (w *repoWeightFiles) bytes(prefix string, specs []staged.TensorSpec) int64 {
	var n int64
	for _, s := range specs {
		n += int64(len(w.tensor(prefix + s.Name).Data))
	}
	return n
}

// convertProgress reports the "convert" phase across both weight files.
type convertProgress struct {
	report      func(Progress)
	done, total int64
}

func (p *convertProgress) add(n int64) {
	p.done += n
	p.report(Progress{"convert", p.done, p.total})
}

// writeFile writes the tensors of specs (source names prefix+name) as BF16
// under their spec names into a new safetensors file at path.
func (w *repoWeightFiles) writeFile(ctx context.Context, path, prefix string, specs []staged.TensorSpec, sync bool, prog *convertProgress) ([]staged.TensorRecord, error) {
	infos := make([]safetensors.TensorInfo, len(specs))
	for i, s := range specs {
		infos[i] = safetensors.TensorInfo{Name: s.Name, DType: safetensors.BF16, Shape: s.Shape}
	}
	layout, err := safetensors.Plan(infos, map[string]string{"format": "pt", "xdna_whisper_format": fmt.Sprint(staged.FormatVersion)})
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.WriteAt(layout.Header, 0); err != nil {
		return nil, err
	}
	records := make([]staged.TensorRecord, len(specs))
	var out []uint16
	for i, s := range specs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		src := w.tensor(prefix + s.Name)
		n := numElems(s.Shape)
		if cap(out) < n {
			out = make([]uint16, n)
		}
		stats := toBF16Values(out[:n], src)
		b := leBytes(out[:n])
		if _, err := f.WriteAt(b, layout.DataOffset()+layout.Tensors[i].Begin); err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		records[i] = staged.TensorRecord{
			Name: s.Name, Shape: s.Shape, DType: string(safetensors.BF16), SHA256: hex.EncodeToString(sum[:]),
			Source: prefix + s.Name, SourceDType: string(src.DType), IdentifiedBy: "tensor name", Error: stats,
		}
		prog.add(int64(len(src.Data)))
	}
	if sync {
		if err := f.Sync(); err != nil {
			return nil, err
		}
	}
	return records, f.Close()
}

// f16Chunk is how many F16 values toBF16Values widens at a time.
const f16Chunk = 1 << 16

// toBF16Values rounds an F32, F16 or BF16 tensor to bf16 (to nearest, ties
// to even; BF16 is copied) and returns the rounding error.
func toBF16Values(dst []uint16, t safetensors.Tensor) bf16.ErrorStats {
	switch t.DType {
	case safetensors.F32:
		return bf16.ConvertLE(dst, t.Data)
	case safetensors.F16: // widened a chunk at a time: a large-v3 embedding is 66 M values
		var stats bf16.ErrorStats
		f := make([]float32, min(len(dst), f16Chunk))
		for i0 := 0; i0 < len(dst); i0 += f16Chunk {
			n := min(f16Chunk, len(dst)-i0)
			for i := range n {
				f[i] = float16.Frombits(binary.LittleEndian.Uint16(t.Data[2*(i0+i):])).Float32()
			}
			stats.Merge(bf16.Convert(dst[i0:i0+n], f[:n]))
		}
		return stats
	default: // BF16, checked by check
		for i := range dst {
			dst[i] = binary.LittleEndian.Uint16(t.Data[2*i:])
		}
		return bf16.ErrorStats{}
	}
}

func numElems(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}
