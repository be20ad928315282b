package converttest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

func TestDemo(t *testing.T) {
	dir := t.TempDir()
	weights, err := Demo(dir)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(weights) != filepath.Join(dir, "cache") {
		t.Errorf("staged into %s, want a key directory under %s", weights, filepath.Join(dir, "cache"))
	}
	if _, err := os.Stat(filepath.Join(weights, staged.WeightsFile)); err != nil {
		t.Errorf("no weights file: %v", err)
	}
	blocked := filepath.Join(dir, "file")
	if err := os.WriteFile(blocked, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Demo(blocked); err == nil {
		t.Error("Demo under a regular file: no error")
	}
}

func TestMicro(t *testing.T) {
	weights, err := Micro(filepath.Join("..", "..", "..", "testdata", "models", "hf-micro"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, err := staged.Open(weights)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if c := m.Capabilities(); !c.Transcribe || !m.HasDecoder() {
		t.Errorf("capabilities %+v decoder %v, want a whole model that transcribes", c, m.HasDecoder())
	}
	if _, err := m.Tokenizer(); err != nil {
		t.Error(err)
	}
	if _, err := Micro(filepath.Join(t.TempDir(), "missing"), t.TempDir()); err == nil {
		t.Error("Micro of a missing fixture: no error")
	}
}
