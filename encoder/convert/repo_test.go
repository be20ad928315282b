package convert

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/x448/float16"
	"github.com/xdna-whisper/xdna-whisper/encoder/bf16"
	"github.com/xdna-whisper/xdna-whisper/encoder/decoder"
	"github.com/xdna-whisper/xdna-whisper/encoder/download"
	"github.com/xdna-whisper/xdna-whisper/encoder/safetensors"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer/tokenizertest"
)

const microDir = models + "hf-micro"

// srcTensor is one tensor of a test repository, as float32 values.
type srcTensor struct {
	name  string
	shape []int
	data  []float32
}

// testRepo is a model repository built by a test: config.json fields,
// tensors, and the other files.
type testRepo struct {
	config  map[string]any
	tensors []srcTensor
	dtype   safetensors.DType // of every tensor (F32 default)
	files   map[string][]byte
	shards  int // > 1: model-0000N-of-0000M.safetensors + index
}

// readMicro loads the committed hf-micro fixture and gives it a byte-level
// tokenizer.json (the fixture has none: its 1,864-token vocabulary is no
// built-in one).
func readMicro(t *testing.T) *testRepo {
	t.Helper()
	r := &testRepo{files: map[string][]byte{}}
	b, err := os.ReadFile(filepath.Join(microDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r.config); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"generation_config.json", "preprocessor_config.json"} {
		if r.files[name], err = os.ReadFile(filepath.Join(microDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	f, err := safetensors.Open(filepath.Join(microDir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, info := range f.Tensors() {
		tt, _ := f.Tensor(info.Name)
		v := make([]float32, len(tt.Data)/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(tt.Data[4*i:]))
		}
		r.tensors = append(r.tensors, srcTensor{info.Name, slices.Clone(info.Shape), v})
	}
	r.files["tokenizer.json"] = byteTokenizerJSON(t, tokenizer.DefaultLanguages)
	return r
}

// byteTokenizerJSON is tokenizertest.ByteLevelJSON, failing t on error.
func byteTokenizerJSON(t *testing.T, numLanguages int) []byte {
	t.Helper()
	data, err := tokenizertest.ByteLevelJSON(numLanguages)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// write writes the repository into a new directory.
func (r *testRepo) write(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cfg, err := json.Marshal(r.config)
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644))
	for name, b := range r.files {
		must(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
	}
	if r.shards <= 1 {
		writeSafetensors(t, filepath.Join(dir, "model.safetensors"), r.tensors, r.dtype)
		return dir
	}
	weightMap := map[string]string{}
	per := (len(r.tensors) + r.shards - 1) / r.shards
	for s := range r.shards {
		part := r.tensors[s*per : min((s+1)*per, len(r.tensors))]
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", s+1, r.shards)
		writeSafetensors(t, filepath.Join(dir, name), part, r.dtype)
		for _, tt := range part {
			weightMap[tt.name] = name
		}
	}
	idx, _ := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 0}, "weight_map": weightMap})
	must(t, os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), idx, 0o644))
	return dir
}

func writeSafetensors(t *testing.T, path string, tensors []srcTensor, dtype safetensors.DType) {
	t.Helper()
	if dtype == "" {
		dtype = safetensors.F32
	}
	infos := make([]safetensors.TensorInfo, len(tensors))
	for i, tt := range tensors {
		infos[i] = safetensors.TensorInfo{Name: tt.name, DType: dtype, Shape: tt.shape}
	}
	var buf bytes.Buffer
	w, err := safetensors.NewWriter(&buf, infos, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tensors {
		if _, err := w.Write(encodeValues(tt.data, dtype)); err != nil {
			t.Fatal(err)
		}
	}
	must(t, w.Close())
	must(t, os.WriteFile(path, buf.Bytes(), 0o644))
}

func encodeValues(v []float32, dtype safetensors.DType) []byte {
	switch dtype {
	case safetensors.F16:
		b := make([]byte, 2*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint16(b[2*i:], float16.Fromfloat32(x).Bits())
		}
		return b
	case safetensors.BF16:
		b := make([]byte, 2*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint16(b[2*i:], bf16.FromFloat32(x))
		}
		return b
	}
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (r *testRepo) tensor(name string) *srcTensor {
	for i := range r.tensors {
		if r.tensors[i].name == name {
			return &r.tensors[i]
		}
	}
	return nil
}

func (r *testRepo) drop(name string) {
	r.tensors = slices.DeleteFunc(r.tensors, func(tt srcTensor) bool { return tt.name == name })
}

func stageDir(t *testing.T, src, cache string) (Result, error) {
	t.Helper()
	return Stage(context.Background(), Options{Source: src, CacheDir: cache, Logger: quiet, NoSync: true})
}

// checkStagedValues opens a staged whole model and checks every encoder
// and decoder tensor against bf16 of the source values (after rounding
// through dtype), and that the decoder loads.
func checkStagedValues(t *testing.T, dir string, r *testRepo) *staged.Model {
	t.Helper()
	m, err := staged.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	must(t, m.Verify())
	if !m.HasDecoder() {
		t.Fatal("no decoder in a whole-model entry")
	}
	dw, err := m.Decoder()
	if err != nil {
		t.Fatal(err)
	}
	round := func(x float32) uint16 {
		switch r.dtype {
		case safetensors.F16:
			return bf16.FromFloat32(float16.Fromfloat32(x).Float32())
		}
		return bf16.FromFloat32(x)
	}
	checked := 0
	for _, src := range r.tensors {
		var shape []int
		var got []uint16
		switch {
		case strings.HasPrefix(src.name, "model.encoder."):
			tt, err := m.Tensor(strings.TrimPrefix(src.name, "model.encoder."))
			if err != nil {
				t.Fatal(err)
			}
			shape, got = tt.Shape, tt.Data
		case strings.HasPrefix(src.name, "model.decoder."):
			if shape, got, err = dw.Tensor(strings.TrimPrefix(src.name, "model.decoder.")); err != nil {
				t.Fatal(err)
			}
		default:
			continue
		}
		if !slices.Equal(shape, src.shape) {
			t.Fatalf("%s: staged shape %v, source %v", src.name, shape, src.shape)
		}
		for i, x := range src.data {
			if want := round(x); got[i] != want {
				t.Fatalf("%s[%d] = %#04x, want bf16(%g) = %#04x", src.name, i, got[i], x, want)
			}
		}
		checked++
	}
	if want := len(m.Config().Tensors()) + len(m.Manifest().Decoder.Tensors); checked != want {
		t.Fatalf("checked %d tensors, the entry has %d", checked, want)
	}
	cfg, err := decoder.ReadConfig(m.HFDir())
	if err != nil {
		t.Fatal(err)
	}
	d, err := decoder.New(cfg, dw, decoder.Options{Threads: 1})
	if err != nil {
		t.Fatalf("decoder.New on the staged decoder: %v", err)
	}
	d.Close()
	return m
}

// The committed hf-micro model staged as a whole model: the encoder and
// decoder tensors equal bf16 of the source, the decoder loads, the
// tokenizer, generation config and capabilities are recorded; staging it
// again finds it in the cache.
func TestStageRepoMicro(t *testing.T) {
	r := readMicro(t)
	src := r.write(t)
	cache := t.TempDir()
	res, err := stageDir(t, src, cache)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Decoder || res.SourcePrecision != staged.Float32 || res.Lossy {
		t.Errorf("result decoder %v precision %s lossy %v, want a float32 whole model", res.Decoder, res.SourcePrecision, res.Lossy)
	}
	m := checkStagedValues(t, res.Dir, r)
	caps := m.Capabilities()
	// A 1,864-token vocabulary is below Whisper's multilingual size: the
	// tokenizer treats it as English-only (no translate).
	if !caps.Encode || !caps.Transcribe || caps.Translate || !slices.Equal(caps.Languages, []string{"en"}) {
		t.Errorf("capabilities %+v, want encode+transcribe in en", caps)
	}
	tok, err := m.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != 1864 || m.Manifest().Tokenizer.Kind != staged.TokenizerHF {
		t.Errorf("tokenizer %d tokens kind %q, want 1864 from hf", tok.VocabSize(), m.Manifest().Tokenizer.Kind)
	}
	gen, err := m.GenerationConfig()
	if err != nil || !bytes.Equal(gen, r.files["generation_config.json"]) {
		t.Errorf("generation config %d bytes (err %v), want the source's %d", len(gen), err, len(r.files["generation_config.json"]))
	}
	var names []string
	for _, f := range m.Manifest().SourceFiles {
		names = append(names, f.Name)
	}
	want := []string{"config.json", "generation_config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json"}
	if !slices.Equal(names, want) {
		t.Errorf("source files %v, want %v", names, want)
	}
	if st, err := os.Stat(res.Dir); err != nil || res.SizeBytes != dirSize(t, res.Dir) || !st.IsDir() {
		t.Errorf("size %d, directory holds %d", res.SizeBytes, dirSize(t, res.Dir))
	}
	again, err := stageDir(t, src, cache)
	if err != nil || !again.Existing || again.Key != res.Key || !again.Decoder || len(res.SourceSHA256) != 64 || again.SourceSHA256 != res.SourceSHA256 || !slices.Equal(again.Capabilities.Tasks(), caps.Tasks()) {
		t.Errorf("restage: %+v, %v; want the existing entry %s", again, err, res.Key)
	}
	// A changed tokenizer file is a different source: a different key.
	r.files["tokenizer_config.json"] = []byte(`{"model_max_length": 448}`)
	other, err := stageDir(t, r.write(t), cache)
	if err != nil || other.Key == res.Key {
		t.Errorf("with tokenizer_config.json: key %s (err %v), want one other than %s", other.Key, err, res.Key)
	}
}

func dirSize(t *testing.T, dir string) int64 {
	n, err := dirBytes(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Sharded (index + 3 shards), fp16 and bf16 sources stage to the values of
// their tensors; sharded fp32 to exactly the unsharded entry's tensors.
func TestStageRepoLayouts(t *testing.T) {
	base := readMicro(t)
	plain, err := stageDir(t, base.write(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pm, err := staged.Open(plain.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	for _, tc := range []struct {
		name   string
		dtype  safetensors.DType
		shards int
		prec   staged.Precision
	}{
		{"sharded", safetensors.F32, 3, staged.Float32},
		{"fp16", safetensors.F16, 1, staged.Float16},
		{"bf16 sharded", safetensors.BF16, 2, staged.BFloat16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := readMicro(t)
			r.dtype, r.shards = tc.dtype, tc.shards
			res, err := stageDir(t, r.write(t), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if res.SourcePrecision != tc.prec {
				t.Errorf("precision %s, want %s", res.SourcePrecision, tc.prec)
			}
			m := checkStagedValues(t, res.Dir, r)
			if tc.dtype != safetensors.F16 { // fp32 and bf16 round to the same bf16
				recs := func(m *staged.Model) []string {
					var out []string
					for _, rec := range append(m.Manifest().Tensors, m.Manifest().Decoder.Tensors...) {
						out = append(out, rec.Name+" "+rec.SHA256)
					}
					return out
				}
				if !slices.Equal(recs(m), recs(pm)) {
					t.Error("staged tensors differ from the unsharded fp32 entry's")
				}
			}
		})
	}
}

// The same encoder staged from Hugging Face safetensors and from its ONNX
// export gives the same staged tensors, bit for bit: tiny-state.npz is the
// PyTorch state dict tiny-op14.onnx was exported from.
func TestStageRepoEqualsONNX(t *testing.T) {
	onnxRes := stageFixture(t, "tiny-op14.onnx", "")
	r := readMicro(t)
	state := readNPZ(t, "tiny-state.npz")
	c := tinyConfig
	r.config["d_model"], r.config["encoder_layers"], r.config["encoder_attention_heads"] = c.DModel, c.EncoderLayers, c.EncoderAttentionHeads
	r.config["encoder_ffn_dim"], r.config["max_source_positions"] = c.EncoderFFNDim, c.MaxSourcePositions
	r.config["decoder_attention_heads"], r.config["decoder_ffn_dim"] = 4, 128
	var tensors []srcTensor
	for _, sp := range c.Tensors() {
		a := state[sp.Name]
		tensors = append(tensors, srcTensor{"model.encoder." + sp.Name, sp.Shape, a.Data})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sp := range staged.DecoderTensorSpecs(c.DModel, 2, 128, 1864, 448) {
		v := make([]float32, numElems(sp.Shape))
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 0.02)
		}
		tensors = append(tensors, srcTensor{"model.decoder." + sp.Name, sp.Shape, v})
	}
	r.tensors = tensors
	res, err := stageDir(t, r.write(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if res.Config != onnxRes.Config {
		t.Errorf("config %+v, ONNX path %+v", res.Config, onnxRes.Config)
	}
	hm := checkStagedValues(t, res.Dir, r)
	om, err := staged.Open(onnxRes.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer om.Close()
	for i, rec := range om.Manifest().Tensors {
		if h := hm.Manifest().Tensors[i]; h.Name != rec.Name || h.SHA256 != rec.SHA256 {
			t.Errorf("tensor %d: safetensors path %s %s, ONNX path %s %s", i, h.Name, h.SHA256[:12], rec.Name, rec.SHA256[:12])
		}
	}
	onnxBytes, _ := os.ReadFile(filepath.Join(onnxRes.Dir, staged.WeightsFile))
	hfBytes, _ := os.ReadFile(filepath.Join(res.Dir, staged.WeightsFile))
	if !bytes.Equal(onnxBytes, hfBytes) {
		t.Error("model.safetensors differs between the ONNX and the safetensors path")
	}
}

// Other Whisper shapes through config.json: 128 mel bins (large-v3), a
// 4-layer decoder (turbo), the .en vocabulary (built-in GPT-2 tokenizer:
// transcribe in English only) and the multilingual one (translate, 99
// languages) when the source has no tokenizer files.
func TestStageRepoShapes(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 51,865-token embeddings")
	}
	for _, tc := range []struct {
		name               string
		mels, layers, vocb int
		translate          bool
		languages          int
		builtin            string
	}{
		{"128 mels, 4 decoder layers", 128, 4, 1864, false, 1, ""},
		{".en", 80, 2, 51864, false, 1, tokenizer.GPT2},
		{"multilingual", 80, 2, 51865, true, 99, tokenizer.Multilingual},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := readMicro(t)
			r.config["num_mel_bins"], r.config["decoder_layers"], r.config["vocab_size"] = tc.mels, tc.layers, tc.vocb
			if tc.builtin != "" {
				delete(r.files, "tokenizer.json")
			}
			d := 64
			rng := rand.New(rand.NewPCG(3, 4))
			random := func(name string, shape ...int) {
				v := make([]float32, numElems(shape))
				for i := range v {
					v[i] = float32(rng.NormFloat64() * 0.02)
				}
				r.drop(name)
				r.tensors = append(r.tensors, srcTensor{name, shape, v})
			}
			random("model.encoder.conv1.weight", d, tc.mels, 3)
			random("model.decoder.embed_tokens.weight", tc.vocb, d)
			for _, sp := range staged.DecoderTensorSpecs(d, tc.layers, 256, tc.vocb, 448) {
				if r.tensor("model.decoder."+sp.Name) == nil {
					random("model.decoder."+sp.Name, sp.Shape...)
				}
			}
			r.dtype = safetensors.BF16 // halves the 51,865 × 64 embedding
			res, err := stageDir(t, r.write(t), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			m := checkStagedValues(t, res.Dir, r)
			if m.Config().NumMelBins != tc.mels || m.Manifest().Decoder.Layers != tc.layers {
				t.Errorf("%d mels, %d decoder layers; want %d, %d", m.Config().NumMelBins, m.Manifest().Decoder.Layers, tc.mels, tc.layers)
			}
			caps := m.Capabilities()
			if caps.Translate != tc.translate || len(caps.Languages) != tc.languages || !caps.Transcribe {
				t.Errorf("capabilities %v, %d languages; want translate %v, %d languages", caps.Tasks(), len(caps.Languages), tc.translate, tc.languages)
			}
			ti := m.Manifest().Tokenizer
			if tc.builtin != "" && (ti.Kind != staged.TokenizerBuiltin || ti.Name != tc.builtin) {
				t.Errorf("tokenizer %+v, want built-in %s", ti, tc.builtin)
			}
			if tok, err := m.Tokenizer(); err != nil || tok.VocabSize() != tc.vocb {
				t.Errorf("tokenizer: %v", err)
			}
		})
	}
}

// Bad repositories fail with an error naming the problem, and leave nothing
// in the cache.
func TestStageRepoErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, r *testRepo)
		post func(t *testing.T, dir string)
		want []string
	}{
		{"missing decoder tensor", func(t *testing.T, r *testRepo) { r.drop("model.decoder.layers.1.fc2.weight") }, nil,
			[]string{"missing tensors", "model.decoder.layers.1.fc2.weight"}},
		{"no decoder", func(t *testing.T, r *testRepo) {
			r.tensors = slices.DeleteFunc(r.tensors, func(tt srcTensor) bool { return strings.HasPrefix(tt.name, "model.decoder.") })
		}, nil, []string{"no model.decoder.embed_tokens.weight", "encoder-only"}},
		{"shape mismatch", func(t *testing.T, r *testRepo) { r.config["encoder_ffn_dim"] = 128 }, nil,
			[]string{"model.encoder.layers.0.fc1.weight", "[256 64]", "[128 64]"}},
		{"decoder layers", func(t *testing.T, r *testRepo) { r.config["decoder_layers"] = 3 }, nil,
			[]string{"missing tensors", "model.decoder.layers.2."}},
		{"untied proj_out", func(t *testing.T, r *testRepo) {
			e := r.tensor("model.decoder.embed_tokens.weight")
			p := slices.Clone(e.data)
			p[0]++
			r.tensors = append(r.tensors, srcTensor{"proj_out.weight", e.shape, p})
		}, nil, []string{"proj_out.weight", "untied"}},
		{"tokenizer size", func(t *testing.T, r *testRepo) { r.files["tokenizer.json"] = byteTokenizerJSON(t, 100) }, nil,
			[]string{"1865 tokens", "vocab_size 1864"}},
		{"no tokenizer", func(t *testing.T, r *testRepo) { delete(r.files, "tokenizer.json") }, nil,
			[]string{"no tokenizer files", "1864"}},
		{"bad generation config", func(t *testing.T, r *testRepo) { r.files["generation_config.json"] = []byte("{") }, nil,
			[]string{"generation_config.json", "not a JSON object"}},
		{"not whisper", func(t *testing.T, r *testRepo) { r.config["model_type"] = "bert" }, nil, []string{"model_type \"bert\""}},
		{"index names a missing shard", func(t *testing.T, r *testRepo) { r.shards = 2 }, func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "model-00002-of-00002.safetensors")))
		}, []string{"model.safetensors.index.json", "model-00002-of-00002.safetensors", "does not have"}},
		{"tensor in another shard", func(t *testing.T, r *testRepo) { r.shards = 2 }, func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json"))
			b = bytes.Replace(b, []byte(`"model.decoder.embed_tokens.weight":"model-00001-of-00002.safetensors"`),
				[]byte(`"model.decoder.embed_tokens.weight":"model-00002-of-00002.safetensors"`), 1)
			must(t, os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), b, 0o644))
		}, []string{"maps tensor model.decoder.embed_tokens.weight to model-00002-of-00002.safetensors"}},
		{"no weights", func(t *testing.T, r *testRepo) {}, func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "model.safetensors")))
			must(t, os.Mkdir(filepath.Join(dir, "onnx"), 0o755))
		}, []string{"neither model.safetensors nor model.safetensors.index.json", "onnx-community"}},
		{"pickle weights only", func(t *testing.T, r *testRepo) {}, func(t *testing.T, dir string) {
			must(t, os.Rename(filepath.Join(dir, "model.safetensors"), filepath.Join(dir, "pytorch_model.bin")))
		}, []string{"neither model.safetensors", "pytorch_model.bin is not read"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := readMicro(t)
			tc.edit(t, r)
			dir := r.write(t)
			if tc.post != nil {
				tc.post(t, dir)
			}
			cache := t.TempDir()
			_, err := stageDir(t, dir, cache)
			if err == nil {
				t.Fatal("staged, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if entries, _ := os.ReadDir(cache); len(entries) != 0 {
				t.Errorf("cache holds %d entries after a failed staging (%s)", len(entries), entries[0].Name())
			}
		})
	}
}

// hf://ORG/REPO[@REV] downloads the repository's known files (the optional
// ones it lacks answer 404), shards through the index, and stages to the
// same key as the same files in a local directory, leaving no download.
func TestStageRepoFromHub(t *testing.T) {
	r := readMicro(t)
	r.shards = 2
	dir := r.write(t)
	var served atomic.Int32
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		name, ok := strings.CutPrefix(req.URL.Path, "/org/whisper-micro/resolve/v1/")
		if !ok || strings.Contains(name, "/") {
			http.NotFound(w, req)
			return
		}
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			http.NotFound(w, req)
			return
		}
		served.Add(1)
		http.ServeFile(w, req, filepath.Join(dir, name))
	}))
	defer hub.Close()
	local, err := stageDir(t, dir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	res, err := Stage(context.Background(), Options{
		Source: "hf://org/whisper-micro@v1", CacheDir: cache, Logger: quiet, NoSync: true,
		Download: download.Options{HFEndpoint: hub.URL, Logger: quiet},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Key != local.Key || !res.Decoder || served.Load() != 7 {
		t.Errorf("key %s decoder %v after %d files, want %s after 7 (config, index, 2 shards, generation, preprocessor, tokenizer)",
			res.Key, res.Decoder, served.Load(), local.Key)
	}
	if got := cacheEntries(t, cache); len(got) != 1 || got[0] != res.Key {
		t.Errorf("cache holds %v", got)
	}
	_, err = Stage(context.Background(), Options{
		Source: "hf://org/missing@v1", CacheDir: t.TempDir(), Logger: quiet, NoSync: true,
		Download: download.Options{HFEndpoint: hub.URL, Logger: quiet},
	})
	if err == nil || !strings.Contains(err.Error(), "config.json") || !strings.Contains(err.Error(), "404") {
		t.Errorf("missing repository: %v", err)
	}
}

// Inspect of a model repository reports what staging it gives, without
// staging it; of the staged entry, the same capabilities, decoder and tensors.
func TestInspectRepo(t *testing.T) {
	r := readMicro(t)
	src := r.write(t)
	rep, err := Inspect(src, 0)
	if err != nil {
		t.Fatal(err)
	}
	res, err := stageDir(t, src, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := Inspect(res.Dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Kind != "model" || st.Kind != "staged" {
		t.Errorf("kinds %q, %q; want model, staged", rep.Kind, st.Kind)
	}
	for _, x := range []Report{rep, st} {
		if strings.Join(x.Capabilities.Tasks(), ",") != "encode,transcribe" || x.Decoder == nil || x.Decoder.Layers != 2 ||
			x.Decoder.Vocab != 1864 || x.Tokenizer == nil || x.Config != res.Config || x.SourcePrecision != staged.Float32 {
			t.Errorf("%s report: caps %v decoder %+v tokenizer %+v config %+v", x.Kind, x.Capabilities.Tasks(), x.Decoder, x.Tokenizer, x.Config)
		}
	}
	if len(rep.Tensors) != len(st.Tensors) || len(rep.Tensors) != len(r.tensors) {
		t.Fatalf("%d tensors from the source, %d staged, %d in the file", len(rep.Tensors), len(st.Tensors), len(r.tensors))
	}
	for i := range rep.Tensors {
		if a, b := rep.Tensors[i], st.Tensors[i]; a.Name != b.Name || !slices.Equal(a.Shape, b.Shape) || a.Source != b.Source {
			t.Errorf("tensor %d: source %s %v (%s), staged %s %v (%s)", i, a.Name, a.Shape, a.Source, b.Name, b.Shape, b.Source)
		}
	}
	delete(r.files, "tokenizer.json")
	if _, err := Inspect(r.write(t), 0); err == nil || !strings.Contains(err.Error(), "no tokenizer files") {
		t.Errorf("inspect without a tokenizer: %v", err)
	}
}

// Stagers racing on one repository all succeed with one entry; a cancelled
// staging leaves nothing behind.
func TestStageRepoConcurrentAndCancelled(t *testing.T) {
	src := readMicro(t).write(t)
	cache := t.TempDir()
	keys := make(chan string, 3)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			r, err := stageDir(t, src, cache)
			keys <- r.Key
			errs <- err
		}()
	}
	var first string
	for range 3 {
		k, err := <-keys, <-errs
		if err != nil {
			t.Fatal(err)
		}
		if first == "" {
			first = k
		} else if k != first {
			t.Errorf("keys %s and %s for one source", first, k)
		}
	}
	if got := cacheEntries(t, cache); len(got) != 1 || got[0] != first {
		t.Errorf("cache holds %v, want [%s]", got, first)
	}

	for _, o := range []Options{{SHA256: strings.Repeat("a", 64)}, {Heads: 4}} {
		o.Source, o.CacheDir, o.Logger, o.NoSync = src, t.TempDir(), quiet, true
		if _, err := Stage(context.Background(), o); err == nil || !strings.Contains(err.Error(), "model repository") {
			t.Errorf("options %+v: %v, want an error saying they do not apply to a model repository", o, err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	other := t.TempDir()
	if _, err := Stage(ctx, Options{Source: src, CacheDir: other, Logger: quiet, NoSync: true}); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("cancelled staging: %v", err)
	}
	if got := cacheEntries(t, other); len(got) != 0 {
		t.Errorf("cache holds %v after a cancelled staging", got)
	}
}
