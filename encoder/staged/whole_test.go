package staged_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/convert/converttest"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

// copyEntry copies a staged directory (two levels: the entry and hf/).
func copyEntry(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// editManifest rewrites dir's manifest.json through edit.
func editManifest(t *testing.T, dir string, edit func(map[string]any)) {
	t.Helper()
	path := filepath.Join(dir, staged.ManifestFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A whole-model entry opens only when its decoder file agrees with the
// manifest; a corrupted decoder tensor fails Verify; a manifest without
// decoder (an encoder-only entry) gives no decoder, tokenizer or
// generation config, and capabilities "encode".
func TestWholeModelEntry(t *testing.T) {
	root := t.TempDir()
	dir, err := converttest.Micro(filepath.Join("..", "..", "testdata", "models", "hf-micro"), root)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(t *testing.T, dir string)
		want string
	}{
		{"no decoder file", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, staged.DecoderFile)) }, "incomplete"},
		{"decoder layers", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m map[string]any) { m["decoder"].(map[string]any)["layers"] = 3 })
		}, "the decoder shape (3 layers"},
		{"decoder vocabulary", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m map[string]any) { m["decoder"].(map[string]any)["vocab"] = 1865 })
		}, "embed_tokens.weight: shape [1864 64], want [1865 64]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := copyEntry(t, dir)
			tt.edit(t, d)
			m, err := staged.Open(d)
			if err == nil {
				m.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}

	t.Run("corrupt decoder tensor", func(t *testing.T) {
		d := copyEntry(t, dir)
		path := filepath.Join(d, staged.DecoderFile)
		b, _ := os.ReadFile(path)
		b[len(b)-1] ^= 1
		os.WriteFile(path, b, 0o644)
		m, err := staged.Open(d)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if err := m.Verify(); err == nil || !strings.Contains(err.Error(), staged.DecoderFile) || !strings.Contains(err.Error(), "layer_norm.bias") {
			t.Errorf("verify: %v, want a sha256 mismatch of the decoder's last tensor", err)
		}
	})

	t.Run("encoder only", func(t *testing.T) {
		d := copyEntry(t, dir)
		editManifest(t, d, func(m map[string]any) { delete(m, "decoder"); delete(m, "tokenizer"); delete(m, "capabilities") })
		m, err := staged.Open(d)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if c := m.Capabilities(); strings.Join(c.Tasks(), ",") != "encode" || m.HasDecoder() {
			t.Errorf("capabilities %v decoder %v, want encode only", c.Tasks(), m.HasDecoder())
		}
		if _, err := m.Decoder(); err == nil {
			t.Error("Decoder of an encoder-only entry: no error")
		}
		if _, err := m.Tokenizer(); err == nil {
			t.Error("Tokenizer of an encoder-only entry: no error")
		}
		if g, err := m.GenerationConfig(); g != nil || err != nil {
			t.Errorf("generation config %q, %v; want none", g, err)
		}
	})

	t.Run("closed", func(t *testing.T) {
		m, err := staged.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		dw, err := m.Decoder()
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := dw.Tensor("embed_tokens.weight"); err == nil || !strings.Contains(err.Error(), "closed") {
			t.Errorf("tensor after Close: %v", err)
		}
	})
}
