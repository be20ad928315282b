package convert

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

// gunzipGraph writes testdata/models/graphs/<name>.onnx.gz into dir.
func gunzipGraph(t testing.TB, name, dir string) string {
	t.Helper()
	f, err := os.Open(filepath.Join(models, "graphs", name+".onnx.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".onnx")
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, z); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// whisperSizes are the encoder configs of every Whisper size.
var whisperSizes = map[string]staged.Config{
	"tiny":     {DModel: 384, EncoderLayers: 4, EncoderAttentionHeads: 6, EncoderFFNDim: 1536, NumMelBins: 80},
	"base":     {DModel: 512, EncoderLayers: 6, EncoderAttentionHeads: 8, EncoderFFNDim: 2048, NumMelBins: 80},
	"small":    {DModel: 768, EncoderLayers: 12, EncoderAttentionHeads: 12, EncoderFFNDim: 3072, NumMelBins: 80},
	"medium":   {DModel: 1024, EncoderLayers: 24, EncoderAttentionHeads: 16, EncoderFFNDim: 4096, NumMelBins: 80},
	"large-v2": {DModel: 1280, EncoderLayers: 32, EncoderAttentionHeads: 20, EncoderFFNDim: 5120, NumMelBins: 80},
	"large-v3": {DModel: 1280, EncoderLayers: 32, EncoderAttentionHeads: 20, EncoderFFNDim: 5120, NumMelBins: 128},
}

// The config of every Whisper size is inferred from its real export graph
// (graph only: the external data file is absent and never read).
func TestInferEverySize(t *testing.T) {
	for name, want := range whisperSizes {
		t.Run(name, func(t *testing.T) {
			p := gunzipGraph(t, "whisper-"+name, t.TempDir())
			r, err := Inspect(p, 0)
			if err != nil {
				t.Fatal(err)
			}
			want.ModelType, want.MaxSourcePositions, want.ActivationFunction = "whisper", 1500, "gelu"
			want.LayerNormEps, want.TorchDtype = 1e-5, "bfloat16"
			if r.Config != want {
				t.Errorf("config %+v, want %+v", r.Config, want)
			}
			if len(r.Tensors) != len(want.Tensors()) {
				t.Errorf("%d tensors, want %d", len(r.Tensors), len(want.Tensors()))
			}
			if name == "base" && r.Sizes.Params != 20_590_592 {
				t.Errorf("base params %d, want 20,590,592", r.Sizes.Params)
			}
			// --heads overrides; a graph-only model cannot be staged
			if r, err := Inspect(p, 1); err != nil || r.Config.EncoderAttentionHeads != 1 {
				t.Errorf("--heads 1: %v heads, %v", r.Config.EncoderAttentionHeads, err)
			}
		})
	}
}
