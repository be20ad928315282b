package decoder

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/safetensors"
)

type tensor struct {
	info safetensors.TensorInfo
	data []byte
}

// microTensors reads the committed fixture's tensors.
func microTensors(t *testing.T) []tensor {
	t.Helper()
	f, err := safetensors.Open(filepath.Join(microDir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []tensor
	for _, ti := range f.Tensors() {
		x, err := f.Tensor(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tensor{ti, slices.Clone(x.Data)})
	}
	return out
}

// writeModel writes config.json and the tensors as safetensors files into
// a new directory: one model.safetensors, or shards with an index.
func writeModel(t *testing.T, ts []tensor, shards int) string {
	t.Helper()
	dir := t.TempDir()
	cfg, err := os.ReadFile(filepath.Join(microDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	weightMap := map[string]string{}
	for s := range shards {
		name := "model.safetensors"
		if shards > 1 {
			name = "model-0000" + string(rune('1'+s)) + "-of-0000" + string(rune('0'+shards)) + ".safetensors"
		}
		var infos []safetensors.TensorInfo
		var part []tensor
		for i, x := range ts {
			if i%shards == s {
				infos = append(infos, safetensors.TensorInfo{Name: x.info.Name, DType: x.info.DType, Shape: x.info.Shape})
				part = append(part, x)
				weightMap[x.info.Name] = name
			}
		}
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		w, err := safetensors.NewWriter(f, infos, map[string]string{"format": "pt"})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range part {
			if _, err := w.Write(x.data); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if shards > 1 {
		b, _ := json.Marshal(map[string]any{"metadata": map[string]any{}, "weight_map": weightMap})
		if err := os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// toBF16 stores every F32 tensor as BF16 (exact: the fixture's weights are
// BF16-rounded).
func toBF16(ts []tensor) []tensor {
	out := make([]tensor, len(ts))
	for i, x := range ts {
		b := make([]byte, len(x.data)/2)
		for j := range len(x.data) / 4 {
			binary.LittleEndian.PutUint16(b[2*j:], uint16(binary.LittleEndian.Uint32(x.data[4*j:])>>16))
		}
		x.info.DType, x.data = safetensors.BF16, b
		out[i] = x
	}
	return out
}

// firstLogits decodes the first check sequence's prompt and returns the
// logits of its last row.
func firstLogits(t *testing.T, dir string) []float32 {
	t.Helper()
	c := readCheck(t, microCheck)
	d := load(t, dir, Options{Threads: 2})
	s, _ := d.NewSequence(crosses(t, d, c)[0])
	out, err := d.NewBatch().Step(context.Background(), []Input{{Seq: s, Tokens: c.Sequences[0].Prompt}})
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

// TestSources: the decoder reads the same weights from F32 and BF16
// files, one file or shards, with or without a tied proj_out copy.
func TestSources(t *testing.T) {
	ts := microTensors(t)
	want := firstLogits(t, microDir)
	var embed tensor
	for _, x := range ts {
		if x.info.Name == "model.decoder.embed_tokens.weight" {
			embed = x
		}
	}
	tied := tensor{embed.info, embed.data}
	tied.info.Name = "proj_out.weight"
	for name, dir := range map[string]string{
		"bf16":          writeModel(t, toBF16(ts), 1),
		"sharded":       writeModel(t, ts, 3),
		"tied proj_out": writeModel(t, append(slices.Clone(ts), tied), 1),
		"bf16 sharded":  writeModel(t, toBF16(ts), 2),
	} {
		if got := firstLogits(t, dir); !slices.Equal(got, want) {
			t.Errorf("%s: logits differ from the committed fixture's", name)
		}
	}
}

// TestSourceErrors: a model the decoder cannot run is refused with an
// error naming what is wrong.
func TestSourceErrors(t *testing.T) {
	ts := microTensors(t)
	without := func(name string) []tensor {
		return slices.DeleteFunc(slices.Clone(ts), func(x tensor) bool { return x.info.Name == name })
	}
	edit := func(name string, f func(*tensor)) []tensor {
		out := slices.Clone(ts)
		for i := range out {
			if out[i].info.Name == name {
				x := out[i]
				x.data = slices.Clone(x.data)
				f(&x)
				out[i] = x
			}
		}
		return out
	}
	untied := tensor{}
	for _, x := range ts {
		if x.info.Name == "model.decoder.embed_tokens.weight" {
			untied = tensor{x.info, slices.Clone(x.data)}
			untied.info.Name = "proj_out.weight"
			untied.data[3] ^= 0x40 // an exponent bit of the first value
		}
	}
	encoderOnly := slices.DeleteFunc(slices.Clone(ts), func(x tensor) bool { return strings.HasPrefix(x.info.Name, "model.decoder.") })
	for _, tc := range []struct {
		name string
		ts   []tensor
		want string
	}{
		{"missing", without("model.decoder.layers.1.encoder_attn.v_proj.bias"), "no tensor model.decoder.layers.1.encoder_attn.v_proj.bias"},
		{"shape", edit("model.decoder.layers.0.fc1.weight", func(x *tensor) { x.info.Shape = []int{64, 256} }), "layers.0.fc1.weight: shape [64 256], want [256 64]"},
		{"dtype", edit("model.decoder.layer_norm.bias", func(x *tensor) { x.info.DType = safetensors.I32 }), "layer_norm.bias is I32, want F32, F16 or BF16"},
		{"untied", append(slices.Clone(ts), untied), "untied output projections are not supported"},
		{"encoder only", encoderOnly, "not a Whisper model with a decoder"},
	} {
		_, err := LoadHF(writeModel(t, tc.ts, 1), Options{Threads: 1})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := LoadHF(t.TempDir(), Options{}); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("empty directory: error %v, want one naming config.json", err)
	}
	dir := writeModel(t, ts, 1)
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"d_model": 64, "decoder_layers": 2, "decoder_attention_heads": 3, "decoder_ffn_dim": 256, "vocab_size": 1864, "max_target_positions": 448, "max_source_positions": 1500}`), 0o644)
	if _, err := LoadHF(dir, Options{}); err == nil || !strings.Contains(err.Error(), "not a multiple of decoder_attention_heads 3") {
		t.Errorf("3 heads of d 64: error %v", err)
	}
}

func TestF16(t *testing.T) {
	for _, tc := range []struct {
		h    uint16
		want float32
	}{
		{0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0001, float32(math.Ldexp(1, -24))}, {0x03ff, float32(math.Ldexp(1023, -24))},
		{0x8000, float32(math.Copysign(0, -1))}, {0x7c00, float32(math.Inf(1))}, {0x3555, 0.333251953125},
	} {
		if got := f16ToF32(tc.h); got != tc.want || math.Signbit(float64(got)) != math.Signbit(float64(tc.want)) {
			t.Errorf("f16 %#04x = %g, want %g", tc.h, got, tc.want)
		}
	}
	if got := f16ToF32(0x7e00); !math.IsNaN(float64(got)) {
		t.Errorf("f16 NaN = %g", got)
	}
}
