package bundled_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/bundled"
)

func TestSpeechDecodes(t *testing.T) {
	samples, err := audio.Load(bundled.Speech(), audio.FormatUnknown, 0, 0)
	if err != nil {
		t.Fatalf("bundled speech clip: %v", err)
	}
	if secs := float64(len(samples)) / audio.SampleRate; secs < 5 || secs > 30 {
		t.Errorf("bundled speech clip lasts %.2f s, want a single window of 5–30 s", secs)
	}
}

func TestWriteTo(t *testing.T) {
	path, err := bundled.WriteTo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, bundled.Model()) || len(got) == 0 {
		t.Errorf("%s: %d bytes, want the %d embedded bytes", path, len(got), len(bundled.Model()))
	}
}
