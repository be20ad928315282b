package staged

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
	"github.com/xdna-whisper/xdna-whisper/encoder/safetensors"
)

var tinyConfig = Config{
	ModelType: "whisper", DModel: 8, EncoderLayers: 2, EncoderAttentionHeads: 2,
	EncoderFFNDim: 16, NumMelBins: 4, MaxSourcePositions: 6,
	ActivationFunction: "gelu", LayerNormEps: 1e-5, TorchDtype: "bfloat16",
}

// element is the value written at index i of tensor number t.
func element(t, i int) float32 { return float32(t) + float32(i)/64 }

// mutation lets a test break one part of the directory being written.
type mutation struct {
	config   func(*Config)
	specs    func([]TensorSpec) []TensorSpec
	dtype    safetensors.DType
	manifest func(map[string]any)
}

// writeDir writes a staged directory for cfg with our safetensors writer.
func writeDir(t *testing.T, cfg Config, mut mutation) string {
	t.Helper()
	dir := t.TempDir()
	specs := cfg.Tensors()
	if mut.specs != nil {
		specs = mut.specs(specs)
	}
	dtype := safetensors.BF16
	if mut.dtype != "" {
		dtype = mut.dtype
	}
	infos := make([]safetensors.TensorInfo, len(specs))
	for i, s := range specs {
		infos[i] = safetensors.TensorInfo{Name: s.Name, DType: dtype, Shape: s.Shape}
	}
	var buf bytes.Buffer
	w, err := safetensors.NewWriter(&buf, infos, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	man := Manifest{FormatVersion: FormatVersion, Key: "k", SourcePrecision: Float32, Precision: BFloat16, Sizes: SizesOf(cfg)}
	for ti, s := range specs {
		size, _ := dtype.Size()
		b := make([]byte, size*numElements(s.Shape))
		for i := range numElements(s.Shape) {
			if size == 2 {
				binary.LittleEndian.PutUint16(b[2*i:], bf16.FromFloat32(element(ti, i)))
			}
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		man.Tensors = append(man.Tensors, TensorRecord{Name: s.Name, Shape: s.Shape, DType: "BF16", SHA256: hex.EncodeToString(sum[:])})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, WeightsFile), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	c := cfg
	if mut.config != nil {
		mut.config(&c)
	}
	writeJSON(t, filepath.Join(dir, ConfigFile), c)
	var mj map[string]any
	b, _ := json.Marshal(man)
	json.Unmarshal(b, &mj)
	if mut.manifest != nil {
		mut.manifest(mj)
	}
	writeJSON(t, filepath.Join(dir, ManifestFile), mj)
	return dir
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOpen(t *testing.T) {
	dir := writeDir(t, tinyConfig, mutation{})
	m, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Config() != tinyConfig {
		t.Errorf("Config = %+v, want %+v", m.Config(), tinyConfig)
	}
	if m.Manifest().FormatVersion != FormatVersion || m.Dir() != dir {
		t.Errorf("Manifest/Dir = %+v %s", m.Manifest(), m.Dir())
	}
	for ti, s := range tinyConfig.Tensors() {
		tn, err := m.Tensor(s.Name)
		if err != nil {
			t.Fatal(err)
		}
		if len(tn.Data) != numElements(s.Shape) || tn.Name != s.Name {
			t.Fatalf("%s: %d elements, want %d", s.Name, len(tn.Data), numElements(s.Shape))
		}
		for i, h := range tn.Data {
			if want := bf16.FromFloat32(element(ti, i)); h != want {
				t.Fatalf("%s[%d] = %#04x, want %#04x", s.Name, i, h, want)
			}
		}
	}
	if err := m.Verify(); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if _, err := m.Tensor("layers.0.self_attn.k_proj.bias"); err == nil {
		t.Error("k_proj.bias found: k_proj has no bias")
	}
	m.Close()
	if _, err := m.Tensor("conv1.weight"); err == nil {
		t.Error("Tensor after Close: no error")
	}
}

func TestOpenErrors(t *testing.T) {
	drop := func(name string) func([]TensorSpec) []TensorSpec {
		return func(s []TensorSpec) []TensorSpec {
			out := s[:0:0]
			for _, x := range s {
				if x.Name != name {
					out = append(out, x)
				}
			}
			return out
		}
	}
	tests := []struct {
		name  string
		mut   mutation
		setup func(dir string)
		want  string
	}{
		{"newer format", mutation{manifest: func(m map[string]any) { m["formatVersion"] = 3 }}, nil,
			"manifest.json: format version 3 is newer than this build's 1"},
		{"no format version", mutation{manifest: func(m map[string]any) { delete(m, "formatVersion") }}, nil, "no formatVersion"},
		{"no manifest", mutation{}, func(d string) { os.Remove(filepath.Join(d, ManifestFile)) }, "incomplete: no manifest.json"},
		{"no config", mutation{}, func(d string) { os.Remove(filepath.Join(d, ConfigFile)) }, "incomplete: no config.json"},
		{"no weights", mutation{}, func(d string) { os.Remove(filepath.Join(d, WeightsFile)) }, "model.safetensors"},
		{"truncated weights", mutation{}, func(d string) {
			p := filepath.Join(d, WeightsFile)
			st, _ := os.Stat(p)
			os.Truncate(p, st.Size()-2)
		}, `tensor "layer_norm.bias": data_offsets [3088, 3104] outside the 3102-byte data buffer`},
		{"bad config", mutation{config: func(c *Config) { c.EncoderAttentionHeads = 3 }}, nil, "d_model 8 is not a multiple of encoder_attention_heads 3"},
		{"config disagrees with shapes", mutation{config: func(c *Config) { c.EncoderFFNDim = 32 }}, nil, "tensor layers.0.fc1.weight: shape [16 8], want [32 8]"},
		{"config has more layers", mutation{config: func(c *Config) { c.EncoderLayers = 3 }}, nil, "holds 37 tensors, config"},
		{"missing tensor", mutation{specs: func(s []TensorSpec) []TensorSpec {
			s = drop("layers.1.fc2.bias")(s)
			return append(s, TensorSpec{Name: "extra", Shape: []int{8}})
		}}, nil, "implies tensor layers.1.fc2.bias [8], not found"},
		{"wrong dtype", mutation{dtype: safetensors.F32}, nil, "dtype F32, want BF16"},
		{"manifest disagrees", mutation{manifest: func(m map[string]any) {
			ts := m["tensors"].([]any)
			ts[0].(map[string]any)["shape"] = []int{1}
		}}, nil, "manifest.json: tensor conv1.weight: shape [1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeDir(t, tinyConfig, tt.mut)
			if tt.setup != nil {
				tt.setup(dir)
			}
			m, err := Open(dir)
			if err == nil {
				m.Close()
				t.Fatalf("Open succeeded, want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("Open error = %q, want it to name the dir and contain %q", err, tt.want)
			}
		})
	}
}

func TestVerifyDetectsCorruption(t *testing.T) {
	dir := writeDir(t, tinyConfig, mutation{})
	p := filepath.Join(dir, WeightsFile)
	b, _ := os.ReadFile(p)
	b[len(b)-1] ^= 1
	os.WriteFile(p, b, 0o644)
	m, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Verify(); err == nil || !strings.Contains(err.Error(), "layer_norm.bias: sha256") {
		t.Errorf("Verify = %v, want a sha256 mismatch on layer_norm.bias", err)
	}
}

func TestWhisperSizes(t *testing.T) {
	base := Config{DModel: 512, EncoderLayers: 6, EncoderAttentionHeads: 8, EncoderFFNDim: 2048, NumMelBins: 80, MaxSourcePositions: 1500}
	s := SizesOf(base)
	if s.Params != 20_590_592 || base.NumParams() != s.Params {
		t.Errorf("whisper-base params = %d, want 20,590,592", s.Params)
	}
	if len(s.Layers) != 8 || s.Layers[1].Name != "layers.0" || s.Layers[1].Params != 3_151_872 {
		t.Errorf("per-layer sizes = %+v, want layers.0 with 3,151,872 params", s.Layers)
	}
	if s.BF16Bytes != 2*s.Params || s.FP32Bytes != 4*s.Params {
		t.Errorf("bytes = %d/%d", s.BF16Bytes, s.FP32Bytes)
	}
	if base.HeadDim() != 64 || base.InputFrames() != 3000 {
		t.Errorf("head dim %d, frames %d", base.HeadDim(), base.InputFrames())
	}
}

func TestKey(t *testing.T) {
	a := Key(BFloat16, "aa")
	if len(a) != 40 || a == Key(BFloat16, "ab") || a == Key(BFloat16, "aa", "cc") || a != Key(BFloat16, "aa") {
		t.Errorf("Key is not a 40-digit function of its inputs: %s", a)
	}
}
