package model

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/convert"
)

// stageONNX stages an ONNX fixture with the real staging code (once per test
// binary and file, into a cache TestMain removes) and returns the staged
// directory.
var staged_ = struct {
	sync.Mutex
	dirs  map[string]string
	cache string
}{dirs: map[string]string{}}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "model-test-cache-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	staged_.cache = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func stageONNX(t *testing.T, file string) string {
	t.Helper()
	staged_.Lock()
	defer staged_.Unlock()
	if d, ok := staged_.dirs[file]; ok {
		return d
	}
	res, err := convert.Stage(context.Background(), convert.Options{Source: file, CacheDir: staged_.cache, NoSync: true})
	if err != nil {
		t.Fatalf("stage %s: %v", file, err)
	}
	staged_.dirs[file] = res.Dir
	return res.Dir
}

// TestEncoderVsORT stages the fixture ONNX exports (opset 14, opset 17, the
// fp16 file, the external-data file) and compares the encoder with ONNX
// Runtime's output on the same file, at batch 1 and at batch 3 (three
// different windows), for every kernel/activation configuration.
func TestEncoderVsORT(t *testing.T) {
	for _, fixture := range []string{"tiny-op14", "tiny-op17", "tiny-op14-fp16", "tiny-op14-external"} {
		dir := stageONNX(t, filepath.Join(repo, "testdata/models", fixture+".onnx"))
		for _, o := range configs() {
			for _, b := range []string{"b1", "b3"} {
				t.Run(fmt.Sprintf("%s/%s/%s/%s", fixture, o.Kernels, o.Activations, b), func(t *testing.T) {
					e := loadOrSkip(t, dir, o)
					in := readNPY(t, filepath.Join(repo, "testdata/golden/tiny_in_"+b+".npy"))
					ref := readNPY(t, filepath.Join(repo, "testdata/golden", fixture+"_out_"+b+".npy"))
					out := encodeFile(t, e, in)
					if len(out.Data) != len(ref.Data) {
						t.Fatalf("output shape %v, ORT %v", out.Shape, ref.Shape)
					}
					requireMatchesORT(t, out.Data, ref.Data, e.Config().DModel)
				})
			}
		}
	}
}

// TestDemoVsORT runs the bundled demo model (full 30 s windows: 3000 frames,
// 1500 positions) on the jfk log-mel and compares with ONNX Runtime.
func TestDemoVsORT(t *testing.T) {
	dir := stageONNX(t, filepath.Join(repo, "encoder/bundled/whisper-demo.onnx"))
	mel := readNPY(t, filepath.Join(repo, "testdata/mel/jfk_80.npy"))
	ref := readNPY(t, filepath.Join(repo, "testdata/golden/demo_out_b1.npy"))
	for _, o := range configs() {
		t.Run(o.Kernels+"/"+o.Activations, func(t *testing.T) {
			e := loadOrSkip(t, dir, o)
			out, err := e.Encode(context.Background(), Tensor{Shape: []int{1, 80, 3000}, Data: mel.Data})
			if err != nil {
				t.Fatal(err)
			}
			requireMatchesORT(t, out.Data, ref.Data, e.Config().DModel)
		})
	}
}

// TestShortInputPadding: the jfk log-mel was computed from audio padded to
// 30 s, and its frames after 1101 are silence. Passing only the first 1102
// frames must give exactly the same output: Encode pads with the value
// normalised log-mel of silence takes.
func TestShortInputPadding(t *testing.T) {
	dir := stageONNX(t, filepath.Join(repo, "encoder/bundled/whisper-demo.onnx"))
	mel := readNPY(t, filepath.Join(repo, "testdata/mel/jfk_80.npy"))
	const keep = 1102
	short := make([]float32, 80*keep)
	for m := range 80 {
		copy(short[m*keep:(m+1)*keep], mel.Data[m*3000:m*3000+keep])
	}
	e, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	full, err := e.Encode(context.Background(), Tensor{Shape: []int{1, 80, 3000}, Data: mel.Data})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Encode(context.Background(), Tensor{Shape: []int{1, 80, keep}, Data: short})
	if err != nil {
		t.Fatal(err)
	}
	for i := range full.Data {
		if got.Data[i] != full.Data[i] {
			t.Fatalf("padded short input differs from the full window at %d: %g vs %g", i, got.Data[i], full.Data[i])
		}
	}
}
