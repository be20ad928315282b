package audio

import (
	"encoding/binary"
	"errors"
)

// Samples is decoded 16 kHz mono audio read a window at a time: a
// transcription holds its request's whole audio while it decodes window
// after window, so the representation sets its memory.
type Samples interface {
	// Len is the number of samples.
	Len() int
	// Slice returns samples [from, to) as float32 in [-1, 1] (a view or a
	// fresh slice; the caller must not write to it).
	Slice(from, to int) []float32
}

// Float32 is audio held as float32 samples (4 bytes each).
type Float32 []float32

// Len is the number of samples.
func (f Float32) Len() int { return len(f) }

// Slice is a view of samples [from, to).
func (f Float32) Slice(from, to int) []float32 { return f[from:to:to] }

// Mono16 is audio held as its 16-bit samples (2 bytes each, half of
// Float32), for files that are 16 kHz mono 16-bit already: Slice converts
// exactly as Load does (sample / 32768).
type Mono16 []int16

// Len is the number of samples.
func (m Mono16) Len() int { return len(m) }

// Slice converts samples [from, to) to float32.
func (m Mono16) Slice(from, to int) []float32 {
	out := make([]float32, to-from)
	for i, v := range m[from:to] {
		out[i] = float32(v) / (1 << 15)
	}
	return out
}

// LoadSamples is Load keeping 16 kHz mono 16-bit PCM (WAV or raw PCM16)
// as Mono16; every other input is decoded by Load into Float32.
func LoadSamples(data []byte, f Format, rate int, maxSeconds float64) (Samples, error) {
	h, err := Probe(data, f, rate)
	if err != nil {
		return nil, err
	}
	var pcm []byte
	switch {
	case h.Rate != SampleRate || h.Channels != 1:
	case h.Format == FormatPCM16:
		if err := checkPCM16(data, rate); err != nil {
			return nil, err
		}
		pcm = data
	case h.Format == FormatWAV:
		wf, p, err := parseWAV(data)
		if err != nil {
			return nil, err
		}
		if wf.tag == wavePCM && wf.bits == 16 {
			pcm = p
		}
	}
	if pcm == nil {
		s, err := Load(data, f, rate, maxSeconds)
		return Float32(s), err
	}
	if secs := h.Seconds(); maxSeconds > 0 && secs > maxSeconds {
		return nil, tooLong(secs, maxSeconds)
	}
	out := make(Mono16, len(pcm)/2)
	if len(out) == 0 {
		return nil, errors.New("audio: input holds no samples")
	}
	for i := range out {
		out[i] = int16(binary.LittleEndian.Uint16(pcm[2*i:]))
	}
	return out, nil
}
