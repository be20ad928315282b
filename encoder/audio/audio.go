// Package audio decodes the audio a Whisper client sends (WAV PCM16/PCM24/
// float32, FLAC, raw PCM16) into float32 samples in [-1, 1), mixes them down
// to mono and resamples them to Whisper's 16 kHz with a band-limited
// (windowed-sinc) resampler.
package audio

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// SampleRate is the rate Whisper's front end expects, in Hz.
const SampleRate = 16000

// Format names an audio encoding.
type Format int

// The encodings Decode accepts.
const (
	// FormatUnknown asks Decode to sniff the format from the data's magic bytes.
	FormatUnknown Format = iota
	// FormatWAV is a RIFF/WAVE file holding PCM16, PCM24, PCM32 or float32 samples.
	FormatWAV
	// FormatFLAC is a native FLAC stream ("fLaC").
	FormatFLAC
	// FormatPCM16 is headerless little-endian signed 16-bit mono samples; the
	// rate must be given separately.
	FormatPCM16
)

// String is the format's short name as used in flags and errors.
func (f Format) String() string {
	switch f {
	case FormatWAV:
		return "wav"
	case FormatFLAC:
		return "flac"
	case FormatPCM16:
		return "pcm16"
	}
	return "unknown"
}

// ParseFormat maps a short name ("wav", "flac", "pcm16") or a MIME type
// ("audio/wav", "audio/x-wav", "audio/wave", "audio/flac", "audio/L16") to a
// Format. The MIME parameters (";rate=16000") are ignored here.
func ParseFormat(s string) (Format, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	if i := strings.IndexByte(name, ';'); i >= 0 {
		name = strings.TrimSpace(name[:i])
	}
	switch name {
	case "", "auto":
		return FormatUnknown, nil
	case "wav", "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave":
		return FormatWAV, nil
	case "flac", "audio/flac", "audio/x-flac":
		return FormatFLAC, nil
	case "pcm16", "pcm_s16le", "s16le", "audio/l16", "audio/pcm":
		return FormatPCM16, nil
	}
	return FormatUnknown, fmt.Errorf("audio format %q: want wav, flac or pcm16 (audio/wav, audio/flac, audio/L16)", s)
}

// Sniff recognises WAV and FLAC by their magic bytes; anything else is
// FormatUnknown (raw PCM has no magic and must be declared).
func Sniff(data []byte) Format {
	switch {
	case len(data) >= 12 && bytes.Equal(data[:4], []byte("RIFF")) && bytes.Equal(data[8:12], []byte("WAVE")):
		return FormatWAV
	case len(data) >= 4 && bytes.Equal(data[:4], []byte("fLaC")):
		return FormatFLAC
	case len(data) >= 3 && bytes.Equal(data[:3], []byte("ID3")):
		return FormatFLAC // FLAC may start with an ID3v2 tag
	}
	return FormatUnknown
}

// Clip is decoded audio: interleaved float32 samples in [-1, 1).
type Clip struct {
	// Rate is the sample rate in Hz.
	Rate int
	// Channels is the number of interleaved channels (≥ 1).
	Channels int
	// Samples holds Frames()*Channels values, frame by frame.
	Samples []float32
}

// Frames is the number of sample frames (samples per channel).
func (c Clip) Frames() int {
	if c.Channels == 0 {
		return 0
	}
	return len(c.Samples) / c.Channels
}

// Seconds is the clip's duration.
func (c Clip) Seconds() float64 {
	if c.Rate == 0 {
		return 0
	}
	return float64(c.Frames()) / float64(c.Rate)
}

// Mono mixes the channels down to one by averaging them, as ffmpeg's "-ac 1"
// (Whisper's loader) does. A mono clip's samples are returned as they are.
func (c Clip) Mono() []float32 {
	if c.Channels == 1 {
		return c.Samples
	}
	n := c.Frames()
	out := make([]float32, n)
	scale := 1 / float32(c.Channels)
	for i := range n {
		var s float32
		for _, v := range c.Samples[i*c.Channels : (i+1)*c.Channels] {
			s += v
		}
		out[i] = s * scale
	}
	return out
}

// ErrEmpty is returned for a body with no audio in it.
var ErrEmpty = errors.New("audio: empty input")

// Decode decodes data in the given format (FormatUnknown sniffs it). rate is
// the sample rate of FormatPCM16 input and is ignored for the others, which
// carry their own.
func Decode(data []byte, f Format, rate int) (Clip, error) {
	if len(data) == 0 {
		return Clip{}, ErrEmpty
	}
	if f == FormatUnknown {
		f = Sniff(data)
	}
	switch f {
	case FormatWAV:
		return DecodeWAV(data)
	case FormatFLAC:
		return DecodeFLAC(data)
	case FormatPCM16:
		return DecodePCM16(data, rate)
	}
	return Clip{}, fmt.Errorf("audio: unrecognised data (first bytes %q): want a RIFF/WAVE or fLaC header, or declare raw pcm16 with its rate", head(data))
}

// Load decodes data, mixes it to mono and resamples it to 16 kHz. Audio
// longer than maxSeconds (0: no limit) is refused from its header where the
// header says (WAV, raw PCM, FLAC's STREAMINFO) before any sample is
// converted. The channels are mixed down as they are decoded; the memory Load
// takes is bounded by Probe's Header.LoadBytes.
func Load(data []byte, f Format, rate int, maxSeconds float64) ([]float32, error) {
	h, err := Probe(data, f, rate)
	if err != nil {
		return nil, err
	}
	if h.Frames == 0 {
		return nil, errors.New("audio: input holds no samples")
	}
	if secs := h.Seconds(); maxSeconds > 0 && secs > maxSeconds {
		return nil, tooLong(secs, maxSeconds)
	}
	var mono []float32
	switch h.Format {
	case FormatWAV:
		wf, pcm, err := parseWAV(data)
		if err != nil {
			return nil, err
		}
		mono, err = wavMono(pcm, &wf)
		if err != nil {
			return nil, err
		}
	case FormatPCM16:
		c, err := DecodePCM16(data, rate)
		if err != nil {
			return nil, err
		}
		mono = c.Samples
	case FormatFLAC:
		c, err := decodeFLAC(data, maxSeconds, true)
		if err != nil {
			return nil, err
		}
		mono = c.Samples
	}
	if len(mono) == 0 {
		return nil, errors.New("audio: input holds no samples")
	}
	if secs := float64(len(mono)) / float64(h.Rate); maxSeconds > 0 && secs > maxSeconds {
		return nil, tooLong(secs, maxSeconds)
	}
	if h.Rate == SampleRate { // mono is this call's own slice: no copy
		return mono, nil
	}
	return Resample(mono, h.Rate, SampleRate)
}

// tooLong is the error for audio over the duration limit.
func tooLong(seconds, limit float64) error {
	return fmt.Errorf("audio: %.2f s long, limit is %.0f s", seconds, limit)
}

// head is the first few bytes of data for an error message.
func head(data []byte) []byte {
	if len(data) > 8 {
		return data[:8]
	}
	return data
}
