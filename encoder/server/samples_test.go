package server

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/audio"
	"github.com/xdna-whisper/xdna-whisper/encoder/transcribe"
)

// samplesFake is the fake Transcriber with TranscribeSamples: it records
// the type of audio the server hands it.
type samplesFake struct {
	*fakeTranscriber
	mu    sync.Mutex
	types []string
}

func (f *samplesFake) TranscribeSamples(ctx context.Context, pcm audio.Samples, o transcribe.Options, emit transcribe.Emit) (transcribe.Result, error) {
	f.mu.Lock()
	f.types = append(f.types, fmt.Sprintf("%T", pcm))
	f.mu.Unlock()
	return f.Transcribe(ctx, pcm.Slice(0, pcm.Len()), o, emit)
}

// TestTranscriptionHolds16BitAudio: a SamplesTranscriber gets 16 kHz mono
// 16-bit WAV audio as audio.Mono16 (half of float32) and other audio as
// audio.Float32, with the same transcript either way.
func TestTranscriptionHolds16BitAudio(t *testing.T) {
	f := &samplesFake{fakeTranscriber: newFakeTranscriber()}
	h := startTranscriber(t, f, DefaultOptions())
	var texts []string
	for _, rate := range []int{16000, 22050} {
		body, ct := form(t, [][2]string{{"model", "whisper-1"}, {"response_format", "text"}}, sineWAV(6, rate, 0.5))
		r := h.postForm(context.Background(), "/v1/audio/transcriptions", ct, body)
		if r.err != nil || r.status != http.StatusOK {
			t.Fatalf("%d Hz: status %d, err %v: %s", rate, r.status, r.err, trim(r.body))
		}
		texts = append(texts, string(r.body))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if want := []string{"audio.Mono16", "audio.Float32"}; fmt.Sprint(f.types) != fmt.Sprint(want) {
		t.Errorf("the Transcriber got %v, want %v", f.types, want)
	}
	if texts[0] != texts[1] {
		t.Errorf("transcripts differ: %q (16 kHz) and %q (22.05 kHz)", texts[0], texts[1])
	}
}
