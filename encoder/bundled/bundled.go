// Package bundled embeds the demo assets every binary carries, so the main job
// (`whisper-encoder demo`) runs anywhere, in a container too:
//
//   - the default model: a small Whisper-encoder-shaped fp32 ONNX export
//     (d_model 64, 2 layers, 4 heads, FFN 256, 80 mel bins, 1500 positions:
//     full 30 s windows of 3000 frames), made by testdata/gen/gen_fixtures.py
//     with torch.onnx.export;
//   - a real-speech clip: 8.45 s of English synthesized by espeak-ng at its
//     native 22.05 kHz (16-bit mono WAV), made by testdata/gen/audio_fixtures.sh.
package bundled

import (
	_ "embed"
	"fmt"
	"path/filepath"

	"github.com/xdna-whisper/xdna-whisper/internal/atomicfile"
)

// Name is the embedded model's file name.
const Name = "whisper-demo.onnx"

// SpeechName is the embedded speech clip's file name.
const SpeechName = "speech_22k.wav"

//go:embed whisper-demo.onnx
var model []byte

//go:embed speech_22k.wav
var speech []byte

// Model returns the embedded ONNX file's bytes (do not modify them).
func Model() []byte { return model }

// Speech returns the embedded speech clip, a WAV file (do not modify it).
func Speech() []byte { return speech }

// WriteTo writes the embedded model into dir as Name (atomically) and returns
// its path.
func WriteTo(dir string) (string, error) {
	path := filepath.Join(dir, Name)
	if err := atomicfile.Write(path, model, 0o644); err != nil {
		return "", fmt.Errorf("bundled model: %w", err)
	}
	return path, nil
}
