package openai_test

import (
	"context"
	"os"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/server"
	"github.com/xdna-whisper/xdna-whisper/encoder/tokenizer"
	"github.com/xdna-whisper/xdna-whisper/encoder/transcribe"
)

// BenchmarkTranscribeJFK is one transcription of jfk (11 s) by the
// Transcriber in process and through the API with the Go SDK (upload,
// multipart, decoding, JSON answer): the difference is the API's cost.
func BenchmarkTranscribeJFK(b *testing.B) {
	sv := serve(b, server.DefaultOptions())
	data, err := os.ReadFile(jfkWAV)
	if err != nil {
		b.Fatal(err)
	}
	o := transcribe.Options{Task: tokenizer.Transcribe}
	b.Run("in-process", func(b *testing.B) {
		for b.Loop() {
			pcm, err := audio.Load(data, audio.FormatUnknown, 0, 0)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := sv.tr.Transcribe(context.Background(), pcm, o, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("go-sdk", func(b *testing.B) {
		c := sv.client()
		for b.Loop() {
			f, err := os.Open(jfkWAV)
			if err != nil {
				b.Fatal(err)
			}
			_, err = c.Audio.Transcriptions.New(context.Background(), openai.AudioTranscriptionNewParams{
				File: openai.File(f, "jfk.wav", "audio/wav"), Model: modelID})
			f.Close()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
