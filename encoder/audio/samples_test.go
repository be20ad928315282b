package audio

import (
	"math"
	"slices"
	"testing"
)

// TestLoadSamples: 16 kHz mono 16-bit audio (WAV, raw PCM16) is held as
// Mono16, half the bytes, and reads back exactly as Load decodes it; other
// audio is Load's float32 samples.
func TestLoadSamples(t *testing.T) {
	tone := func(rate, channels int) Clip {
		s := make([]float32, rate/2*channels)
		for i := range s {
			s[i] = float32(0.5 * math.Sin(float64(i)*0.01))
		}
		return Clip{Rate: rate, Channels: channels, Samples: s}
	}
	mono := EncodeWAV16(tone(SampleRate, 1))
	for _, c := range []struct {
		name   string
		data   []byte
		format Format
		rate   int
		mono16 bool
	}{
		{"16 kHz mono WAV", mono, FormatUnknown, 0, true},
		{"16 kHz raw PCM16", mono[44:], FormatPCM16, SampleRate, true},
		{"16 kHz stereo WAV", EncodeWAV16(tone(SampleRate, 2)), FormatUnknown, 0, false},
		{"22.05 kHz mono WAV", EncodeWAV16(tone(22050, 1)), FormatUnknown, 0, false},
	} {
		want, err := Load(c.data, c.format, c.rate, 0)
		if err != nil {
			t.Fatalf("%s: Load: %v", c.name, err)
		}
		got, err := LoadSamples(c.data, c.format, c.rate, 0)
		if err != nil {
			t.Fatalf("%s: LoadSamples: %v", c.name, err)
		}
		if _, ok := got.(Mono16); ok != c.mono16 {
			t.Errorf("%s: LoadSamples gave %T, want Mono16: %v", c.name, got, c.mono16)
		}
		if got.Len() != len(want) || !slices.Equal(got.Slice(0, got.Len()), want) {
			t.Errorf("%s: LoadSamples' %d samples differ from Load's %d", c.name, got.Len(), len(want))
		}
		if n := got.Len(); n > 10 && !slices.Equal(got.Slice(3, 10), want[3:10]) {
			t.Errorf("%s: Slice(3, 10) differs from Load's samples 3 to 10", c.name)
		}
	}
	if _, err := LoadSamples(mono, FormatUnknown, 0, 0.25); err == nil {
		t.Error("0.5 s of audio with a 0.25 s limit: no error")
	}
	if _, err := LoadSamples(mono[44:45], FormatPCM16, SampleRate, 0); err == nil {
		t.Error("raw PCM16 of 1 byte: no error")
	}
}
