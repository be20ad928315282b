package convert

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// cacheEntries lists the cache's entries.
func cacheEntries(t *testing.T, cache string) []string {
	t.Helper()
	es, err := os.ReadDir(cache)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func copyFixture(t *testing.T, dir string, names ...string) {
	t.Helper()
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(models, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Each bad input fails with an error that says what was expected, what was
// found and where, and leaves nothing in the cache.
func TestBadInputs(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(models, "tiny-op14.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		setup func(dir string) string // returns the source path
		heads int
		sha   string
		want  []string
	}{
		{"truncated", func(dir string) string {
			p := filepath.Join(dir, "cut.onnx")
			os.WriteFile(p, good[:len(good)*2/3], 0o644)
			return p
		}, 0, "", []string{"cut.onnx", "not a valid ONNX model"}},
		{"not onnx", func(dir string) string {
			p := filepath.Join(dir, "notes.onnx")
			os.WriteFile(p, []byte("# just some text\nnot a model at all\n"), 0o644)
			return p
		}, 0, "", []string{"notes.onnx", "not"}},
		{"empty", func(dir string) string {
			p := filepath.Join(dir, "empty.onnx")
			os.WriteFile(p, nil, 0o644)
			return p
		}, 0, "", []string{"empty.onnx", "empty file, want an ONNX model"}},
		{"missing file", func(dir string) string { return filepath.Join(dir, "nope.onnx") }, 0, "", []string{"nope.onnx", "no such file"}},
		{"decoder", func(string) string { return filepath.Join(models, "not-encoder-decoder.onnx") }, 0, "",
			[]string{"not a Whisper encoder", "embed_tokens", "a decoder?", "input_ids"}},
		{"unrelated model", func(string) string { return filepath.Join(models, "not-encoder-mlp.onnx") }, 0, "",
			[]string{"not a Whisper encoder", "want Conv nodes conv1 and conv2", "graph inputs [x]"}},
		{"missing external data", func(dir string) string {
			copyFixture(t, dir, "tiny-op14-external.onnx")
			return filepath.Join(dir, "tiny-op14-external.onnx")
		}, 0, "", []string{"tiny-op14-external.onnx_data", "no such file", "tensor"}},
		{"short external data", func(dir string) string {
			copyFixture(t, dir, "tiny-op14-external.onnx", "tiny-op14-external.onnx_data")
			os.Truncate(filepath.Join(dir, "tiny-op14-external.onnx_data"), 100000)
			return filepath.Join(dir, "tiny-op14-external.onnx")
		}, 0, "", []string{"is 100000 bytes, the tensor needs bytes", "tensor \""}},
		{"dims exceed the stored bytes", func(dir string) string {
			// conv1.bias is dims [32] FLOAT with 128 bytes of raw_data: claim [33]
			b := bytes.Replace(good, []byte("\x08\x20\x10\x01\x42\x0aconv1.bias"), []byte("\x08\x21\x10\x01\x42\x0aconv1.bias"), 1)
			p := filepath.Join(dir, "dims.onnx")
			os.WriteFile(p, b, 0o644)
			return p
		}, 0, "", []string{"dims.onnx", `tensor "conv1.bias"`, "FLOAT dims [33] need 132 bytes, raw_data holds 128"}},
		{"dims overflow", func(dir string) string {
			// the same 16 bytes: dims [2^62] (a 9-byte varint) and the name "cb"
			old := []byte("\x08\x20\x10\x01\x42\x0aconv1.bias")
			b := bytes.Replace(good, old, []byte("\x08\x80\x80\x80\x80\x80\x80\x80\x80\x40\x10\x01\x42\x02cb"), 1)
			p := filepath.Join(dir, "overflow.onnx")
			os.WriteFile(p, b, 0o644)
			return p
		}, 0, "", []string{"overflow.onnx", `tensor "cb"`, "dims [4611686018427387904]: more than 1099511627776 elements"}},
		{"shape disagrees with config", func(string) string { return filepath.Join(models, "bad-ffn.onnx") }, 0, "",
			[]string{"tensor layers.1.fc1.weight", "/layers.1/fc1/MatMul", "shape [96 32], want [128 32]"}},
		{"heads do not divide d_model", func(string) string { return filepath.Join(models, "tiny-op14.onnx") }, 5, "",
			[]string{"d_model 32 is not a multiple of encoder_attention_heads 5"}},
		{"sha256 mismatch", func(string) string { return filepath.Join(models, "tiny-op14.onnx") }, 0, strings.Repeat("ab", 32),
			[]string{"sha256 mismatch", "expected sha256 " + strings.Repeat("ab", 32) + ", the download did not match"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, cache := t.TempDir(), t.TempDir()
			src := tt.setup(dir)
			_, err := Stage(context.Background(), Options{Source: src, CacheDir: cache, Heads: tt.heads, SHA256: tt.sha, Logger: quiet, NoSync: true})
			if err == nil {
				t.Fatal("staged a bad input")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if left := cacheEntries(t, cache); len(left) != 0 {
				t.Errorf("cache holds %v after a failure", left)
			}
		})
	}
}

func TestRestageIsNoOp(t *testing.T) {
	cache := t.TempDir()
	first := stageFixture(t, "tiny-op14.onnx", cache)
	st, _ := os.Stat(filepath.Join(first.Dir, "manifest.json"))
	second := stageFixture(t, "tiny-op14.onnx", cache)
	if !second.Existing || second.Dir != first.Dir || second.Key != first.Key || second.SizeBytes != first.SizeBytes {
		t.Errorf("restage = %+v, want the existing %+v", second, first)
	}
	st2, _ := os.Stat(filepath.Join(first.Dir, "manifest.json"))
	if !st.ModTime().Equal(st2.ModTime()) {
		t.Error("restaging rewrote the manifest")
	}
	if got := cacheEntries(t, cache); len(got) != 1 || got[0] != first.Key {
		t.Errorf("cache = %v, want just %s", got, first.Key)
	}
	// the same weights in another layout are other source bytes: another key
	other := stageFixture(t, "tiny-op17.onnx", cache)
	if other.Key == first.Key {
		t.Error("different sources share a key")
	}
}

func TestConcurrentStagers(t *testing.T) {
	cache := t.TempDir()
	const n = 6
	results := make([]Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = Stage(context.Background(), Options{
				Source: filepath.Join(models, "tiny-op14-external.onnx"), CacheDir: cache, Logger: quiet, NoSync: true, Workers: 2,
			})
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("stager %d: %v", i, errs[i])
		}
		if results[i].Dir != results[0].Dir {
			t.Fatalf("stager %d staged into %s, stager 0 into %s", i, results[i].Dir, results[0].Dir)
		}
	}
	if got := cacheEntries(t, cache); len(got) != 1 || got[0] != results[0].Key {
		t.Errorf("cache = %v, want one directory %s", got, results[0].Key)
	}
	if !isStaged(results[0].Dir) {
		t.Error("the staged directory does not open")
	}
}

// TestKilledStager kills a stager (SIGKILL, from its own progress callback)
// in the middle of the conversion: nothing that looks complete is left, and
// the next stager cleans up and succeeds.
func TestKilledStager(t *testing.T) {
	if os.Getenv("STAGE_KILL_CACHE") != "" {
		Stage(context.Background(), Options{
			Source: filepath.Join(models, "tiny-op14.onnx"), CacheDir: os.Getenv("STAGE_KILL_CACHE"), Logger: quiet, Workers: 1,
			Progress: func(p Progress) {
				if p.Phase == "convert" && p.Done > 0 {
					syscall.Kill(os.Getpid(), syscall.SIGKILL)
				}
			},
		})
		t.Fatal("not killed")
	}
	cache := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledStager$")
	cmd.Env = append(os.Environ(), "STAGE_KILL_CACHE="+cache)
	err := cmd.Run()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("helper was not killed: %v", err)
	}
	left := cacheEntries(t, cache)
	if len(left) != 1 || !strings.HasPrefix(left[0], tmpPrefix) {
		t.Fatalf("after the kill the cache holds %v, want one temporary entry", left)
	}
	if isStaged(filepath.Join(cache, left[0])) {
		t.Fatal("the killed stager's temporary directory looks complete")
	}
	r := stageFixture(t, "tiny-op14.onnx", cache)
	if got := cacheEntries(t, cache); len(got) != 1 || got[0] != r.Key {
		t.Errorf("after restaging the cache holds %v, want just %s", got, r.Key)
	}
}

// A temporary directory held by a live stager is not removed.
func TestLiveTempDirKept(t *testing.T) {
	cache := t.TempDir()
	dir, unlock, err := lockedTemp(cache, tmpPrefix)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	stageFixture(t, "tiny-op14.onnx", cache)
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("a live temporary directory was removed: %v", err)
	}
}
