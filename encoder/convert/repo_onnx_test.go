package convert

import (
	"bytes"
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/download"
	"github.com/xdna-whisper/xdna-whisper/encoder/safetensors"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

// microCopy copies hf-micro's JSON and tokenizer files and the given files
// (model.safetensors, onnx/…) into a new directory.
func microCopy(t *testing.T, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	must(t, os.Mkdir(filepath.Join(dir, onnxDir), 0o755))
	base := []string{"config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json"}
	for _, f := range append(base, files...) {
		b, err := os.ReadFile(filepath.Join(microDir, f))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(dir, f), b, 0o644))
	}
	return dir
}

// tensorsOf reads every tensor of a staged safetensors file.
func tensorsOf(t *testing.T, path string) map[string]safetensors.Tensor {
	t.Helper()
	f, err := safetensors.Open(path)
	must(t, err)
	t.Cleanup(func() { f.Close() })
	out := map[string]safetensors.Tensor{}
	for _, info := range f.Tensors() {
		tt, err := f.Tensor(info.Name)
		must(t, err)
		out[info.Name] = tt
	}
	return out
}

// sameTensors requires the two staged files to hold the same tensors, bit
// for bit.
func sameTensors(t *testing.T, file, gotDir, wantDir string) {
	t.Helper()
	got, want := tensorsOf(t, filepath.Join(gotDir, file)), tensorsOf(t, filepath.Join(wantDir, file))
	if len(got) != len(want) {
		t.Fatalf("%s: %d tensors, safetensors staging has %d", file, len(got), len(want))
	}
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s: no tensor %s", file, name)
		case g.DType != w.DType || !slices.Equal(g.Shape, w.Shape):
			t.Errorf("%s: %s is %s %v, want %s %v", file, name, g.DType, g.Shape, w.DType, w.Shape)
		case !bytes.Equal(g.Data, w.Data):
			t.Errorf("%s: %s differs from the safetensors staging's", file, name)
		}
	}
}

// The decisive check: hf-micro staged from its onnx/ only (the encoder, and
// the decoder of each layout) holds exactly the BF16 tensors of hf-micro
// staged from model.safetensors, with the same capabilities and tokenizer.
func TestStageONNXLayoutMicro(t *testing.T) {
	cache := t.TempDir()
	ref, err := stageDir(t, microCopy(t, "model.safetensors"), cache)
	must(t, err)
	refModel, err := staged.Open(ref.Dir)
	must(t, err)
	defer refModel.Close()
	for _, dec := range []string{"decoder_model_merged.onnx", "decoder_model.onnx"} {
		t.Run(dec, func(t *testing.T) {
			src := microCopy(t, "onnx/encoder_model.onnx", "onnx/"+dec)
			res, err := stageDir(t, src, cache)
			must(t, err)
			if res.Existing || res.Key == ref.Key || !res.Decoder || res.SourcePrecision != staged.Float32 {
				t.Errorf("result %+v, want a new float32 whole-model entry", res)
			}
			sameTensors(t, staged.WeightsFile, res.Dir, ref.Dir)
			sameTensors(t, staged.DecoderFile, res.Dir, ref.Dir)
			m, err := staged.Open(res.Dir)
			must(t, err)
			defer m.Close()
			must(t, m.Verify())
			if got, want := m.Capabilities(), refModel.Capabilities(); !slices.Equal(got.Tasks(), want.Tasks()) || !slices.Equal(got.Languages, want.Languages) {
				t.Errorf("capabilities %+v, safetensors staging %+v", got, want)
			}
			if got, want := *m.Manifest().Tokenizer, *refModel.Manifest().Tokenizer; got.Name != want.Name || got.VocabSize != want.VocabSize || got.Kind != want.Kind {
				t.Errorf("tokenizer %+v, safetensors staging %+v", got, want)
			}
			if m.Config() != refModel.Config() {
				t.Errorf("config %+v, safetensors staging %+v", m.Config(), refModel.Config())
			}
			var names []string
			for _, f := range m.Manifest().SourceFiles {
				names = append(names, f.Name)
			}
			if !slices.Contains(names, "onnx/encoder_model.onnx") || !slices.Contains(names, "onnx/"+dec) || slices.Contains(names, "model.safetensors") {
				t.Errorf("source files %v, want the two onnx/ files", names)
			}
			for _, r := range m.Manifest().Decoder.Tensors {
				if r.Node == "" || r.IdentifiedBy == "" || r.Source == "" {
					t.Errorf("decoder tensor %s: record %+v names no node, source or how it was found", r.Name, r)
				}
			}
			again, err := stageDir(t, src, cache)
			if err != nil || !again.Existing || again.Key != res.Key {
				t.Errorf("restage: %+v, %v; want the existing entry %s", again, err, res.Key)
			}
		})
	}
}

// With both model.safetensors and onnx/, the safetensors are staged (the
// ONNX files are not read nor part of the key).
func TestStageONNXLayoutPrecedence(t *testing.T) {
	cache := t.TempDir()
	res, err := stageDir(t, microCopy(t, "model.safetensors", "onnx/encoder_model.onnx", "onnx/decoder_model_merged.onnx"), cache)
	must(t, err)
	m, err := staged.Open(res.Dir)
	must(t, err)
	defer m.Close()
	for _, f := range m.Manifest().SourceFiles {
		if strings.HasPrefix(f.Name, onnxDir+"/") {
			t.Errorf("source file %s staged beside model.safetensors", f.Name)
		}
	}
	if m.Manifest().Producer != "huggingface safetensors" {
		t.Errorf("producer %q, want the safetensors path", m.Manifest().Producer)
	}
}

// Layouts that cannot be staged are refused with the files involved named,
// and nothing is left in the cache.
func TestStageONNXLayoutErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		want  []string
	}{
		{"with past only", []string{"onnx/encoder_model.onnx", "onnx/decoder_with_past_model.onnx"},
			[]string{"decoder_with_past_model.onnx", "encoder_attn.k_proj", "past_key_values.0.encoder.key", "decoder_model.onnx"}},
		{"no decoder", []string{"onnx/encoder_model.onnx"},
			[]string{"no decoder_model_merged.onnx", "encoder-only"}},
		{"no encoder", []string{"onnx/decoder_model.onnx"}, []string{"no encoder_model.onnx"}},
		{"decoder as encoder", nil, []string{"onnx/encoder_model.onnx", "conv"}},
		{"truncated decoder", []string{"onnx/encoder_model.onnx", "onnx/decoder_model.onnx"}, []string{"decoder_model.onnx"}},
		{"config disagrees", []string{"onnx/encoder_model.onnx", "onnx/decoder_model.onnx"},
			[]string{"onnx/encoder_model.onnx", "encoder_layers 2", "config.json says 3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := microCopy(t, tc.files...)
			if tc.files == nil { // the decoder under the encoder's name
				b, err := os.ReadFile(filepath.Join(microDir, "onnx/decoder_model.onnx"))
				must(t, err)
				must(t, os.WriteFile(filepath.Join(src, "onnx/encoder_model.onnx"), b, 0o644))
				must(t, os.WriteFile(filepath.Join(src, "onnx/decoder_model.onnx"), b, 0o644))
			}
			switch tc.name {
			case "truncated decoder":
				b, err := os.ReadFile(filepath.Join(microDir, "onnx/decoder_model.onnx"))
				must(t, err)
				must(t, os.WriteFile(filepath.Join(src, "onnx/decoder_model.onnx"), b[:len(b)/2], 0o644))
			case "config disagrees":
				b, err := os.ReadFile(filepath.Join(src, "config.json"))
				must(t, err)
				b = bytes.Replace(b, []byte(`"encoder_layers": 2`), []byte(`"encoder_layers": 3`), 1)
				must(t, os.WriteFile(filepath.Join(src, "config.json"), b, 0o644))
			}
			cache := t.TempDir()
			_, err := stageDir(t, src, cache)
			if err == nil {
				t.Fatal("staged; want an error")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if entries, _ := os.ReadDir(cache); len(entries) != 0 {
				t.Errorf("cache holds %d entries after a failed staging", len(entries))
			}
		})
	}
}

// An fp16 decoder export (fp16 weights behind Casts) stages to the BF16 of
// its fp16 values: the same tensors as model.safetensors stored in F16, and
// the entry is marked lossy.
func TestStageONNXLayoutFP16(t *testing.T) {
	cache := t.TempDir()
	res, err := stageDir(t, microCopy(t, "onnx/encoder_model.onnx", "onnx/decoder_model_fp16.onnx"), cache)
	must(t, err)
	if res.SourcePrecision != staged.Float16 || !res.Lossy {
		t.Errorf("precision %s lossy %v, want float16, lossy", res.SourcePrecision, res.Lossy)
	}
	r := readMicro(t)
	r.dtype = safetensors.F16
	ref, err := stageDir(t, r.write(t), cache)
	must(t, err)
	sameTensors(t, staged.DecoderFile, res.Dir, ref.Dir)
	m, err := staged.Open(res.Dir)
	must(t, err)
	defer m.Close()
	for _, rec := range m.Manifest().Decoder.Tensors {
		if rec.SourceDType != "FLOAT16" {
			t.Errorf("decoder tensor %s from a %s source, want FLOAT16", rec.Name, rec.SourceDType)
		}
	}
}

// The layout picks fp32 before fp16 and a whole decoder before the with-past
// one, whatever else the folder holds.
func TestFindONNXLayout(t *testing.T) {
	for _, tc := range []struct {
		files    []string
		enc, dec string
	}{
		{[]string{"encoder_model_fp16.onnx", "encoder_model.onnx", "decoder_model_merged_fp16.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx"},
			"encoder_model.onnx", "decoder_model.onnx"},
		{[]string{"encoder_model_quantized.onnx", "decoder_with_past_model.onnx", "decoder_model_merged_fp16.onnx", "decoder_model_merged_quantized.onnx"},
			"encoder_model_quantized.onnx", "decoder_model_merged_fp16.onnx"},
		{[]string{"encoder_model_fp16.onnx", "decoder_with_past_model_fp16.onnx"}, "encoder_model_fp16.onnx", "decoder_with_past_model_fp16.onnx"},
	} {
		have := func(f string) bool { return slices.Contains(tc.files, strings.TrimPrefix(f, onnxDir+"/")) }
		l, err := findONNXLayout(have)
		if err != nil || l.encoder != onnxDir+"/"+tc.enc || l.decoder != onnxDir+"/"+tc.dec {
			t.Errorf("%v: %+v, %v; want %s and %s", tc.files, l, err, tc.enc, tc.dec)
		}
	}
	_, err := findONNXLayout(func(f string) bool {
		return f == "onnx/encoder_model.onnx" || f == "onnx/decoder_model_merged_q4.onnx" || f == "onnx/decoder_model_int8.onnx"
	})
	if err == nil || !strings.Contains(err.Error(), "decoder_model_merged_q4.onnx") || !strings.Contains(err.Error(), "decoder_model_int8.onnx") || !strings.Contains(err.Error(), "quantized decoders are not staged") {
		t.Errorf("quantized decoders only: %v, want a refusal naming them", err)
	}
}

// hf://ORG/REPO of an onnx-community layout downloads the metadata, the
// first encoder and decoder candidates the hub has, and stages to the same
// key as the local copy; the download folder is gone afterwards.
func TestStageONNXLayoutFromHub(t *testing.T) {
	serve := map[string]bool{"onnx/encoder_model.onnx": true, "onnx/decoder_model_merged.onnx": true,
		"config.json": true, "generation_config.json": true, "preprocessor_config.json": true,
		"tokenizer.json": true, "tokenizer_config.json": true}
	var mu sync.Mutex
	var served []string
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, "/org/micro/resolve/v1/")
		mu.Lock()
		ok = ok && serve[name]
		if ok {
			served = append(served, name)
		}
		mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, filepath.Join(microDir, name))
	}))
	defer hub.Close()
	cache := t.TempDir()
	local, err := stageDir(t, microCopy(t, "onnx/encoder_model.onnx", "onnx/decoder_model_merged.onnx"), t.TempDir())
	must(t, err)
	res, err := Stage(context.Background(), Options{Source: "hf://org/micro@v1", CacheDir: cache, Logger: quiet, NoSync: true,
		Download: download.Options{HFEndpoint: hub.URL, Logger: quiet}})
	must(t, err)
	if res.Key != local.Key || !res.Decoder {
		t.Errorf("key %s (decoder %v), the local copy stages to %s", res.Key, res.Decoder, local.Key)
	}
	mu.Lock()
	slices.Sort(served)
	want := slices.Sorted(maps.Keys(serve))
	if !slices.Equal(served, want) {
		t.Errorf("served %v, want each of %v once", served, want)
	}
	serve = map[string]bool{"config.json": true} // a hub with neither safetensors nor an encoder .onnx
	mu.Unlock()
	if got := cacheEntries(t, cache); len(got) != 1 || got[0] != res.Key {
		t.Errorf("cache holds %v", got)
	}
	_, err = Stage(context.Background(), Options{Source: "hf://org/micro@v1", CacheDir: t.TempDir(), Logger: quiet, NoSync: true,
		Download: download.Options{HFEndpoint: hub.URL, Logger: quiet}})
	if err == nil || !strings.Contains(err.Error(), "neither model.safetensors") || !strings.Contains(err.Error(), "onnx/") {
		t.Errorf("config.json only: %v, want a no-weights error", err)
	}
}

// inspect of an onnx-community layout lists what staging would write: the
// encoder's and the decoder's tensors with the nodes that identify them,
// and the same capabilities and shapes as the safetensors layout's report.
func TestInspectONNXLayout(t *testing.T) {
	got, err := Inspect(microCopy(t, "onnx/encoder_model.onnx", "onnx/decoder_model_merged.onnx"), 0)
	must(t, err)
	want, err := Inspect(microCopy(t, "model.safetensors"), 0)
	must(t, err)
	if got.Kind != "model" || got.Decoder == nil || *got.Decoder != *want.Decoder || got.Config != want.Config ||
		!slices.Equal(got.Capabilities.Tasks(), want.Capabilities.Tasks()) || len(got.Tensors) != len(want.Tensors) {
		t.Fatalf("report %+v\nsafetensors layout %+v", got, want)
	}
	for i, row := range got.Tensors {
		if row.Name != want.Tensors[i].Name || !slices.Equal(row.Shape, want.Tensors[i].Shape) {
			t.Errorf("row %d: %s %v, safetensors layout %s %v", i, row.Name, row.Shape, want.Tensors[i].Name, want.Tensors[i].Shape)
		}
		if strings.HasPrefix(row.Name, "decoder.") && (row.Node == "" || row.Source == "") {
			t.Errorf("row %s names no node or source: %+v", row.Name, row)
		}
	}
	if !strings.Contains(got.Producer, "decoder_model_merged.onnx") {
		t.Errorf("producer %q does not name the decoder file", got.Producer)
	}
}

// The "convert" progress of an onnx-community staging runs once from 0 to
// its total across the encoder and decoder files, never backwards.
func TestStageONNXLayoutProgress(t *testing.T) {
	var mu sync.Mutex
	var reports []Progress
	_, err := Stage(context.Background(), Options{Source: microCopy(t, "onnx/encoder_model.onnx", "onnx/decoder_model_merged.onnx"),
		CacheDir: t.TempDir(), Logger: quiet, NoSync: true, Workers: 1, Progress: func(p Progress) {
			if p.Phase == "convert" {
				mu.Lock()
				reports = append(reports, p)
				mu.Unlock()
			}
		}})
	must(t, err)
	if len(reports) == 0 {
		t.Fatal("no convert progress")
	}
	last := reports[len(reports)-1]
	for i, p := range reports {
		if p.Total != last.Total || (i > 0 && p.Done < reports[i-1].Done) {
			t.Fatalf("report %d: %+v after %+v (total %d)", i, p, reports[max(i-1, 0)], last.Total)
		}
	}
	if last.Done != last.Total || last.Total == 0 {
		t.Errorf("last report %+v, want done = total > 0", last)
	}
}
