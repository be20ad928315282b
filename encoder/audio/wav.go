package audio

import (
	"encoding/binary"
	"fmt"
	"math"
)

// WAVE format tags (the fmt chunk's wFormatTag).
const (
	wavePCM        = 0x0001
	waveFloat      = 0x0003
	waveExtensible = 0xFFFE
)

// maxChannels bounds the channel count accepted from a header.
const maxChannels = 32

// waveFmt is the part of a WAVE fmt chunk the decoder needs.
type waveFmt struct {
	tag, channels, blockAlign, bits int
	rate                            int
}

// DecodeWAV decodes a RIFF/WAVE file holding integer PCM (16, 24 or 32 bit)
// or IEEE float32 samples, plain or WAVE_FORMAT_EXTENSIBLE. A header that
// claims more bytes than the file holds is an error, not a short read.
func DecodeWAV(data []byte) (Clip, error) {
	f, pcm, err := parseWAV(data)
	if err != nil {
		return Clip{}, err
	}
	samples, err := wavSamples(pcm, &f)
	if err != nil {
		return Clip{}, err
	}
	return Clip{Rate: f.rate, Channels: f.channels, Samples: samples}, nil
}

// parseWAV checks a RIFF/WAVE file and returns its format and sample bytes.
func parseWAV(data []byte) (waveFmt, []byte, error) {
	if len(data) < 12 || string(data[:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		return waveFmt{}, nil, fmt.Errorf("wav: not a RIFF/WAVE file (first bytes %q)", head(data))
	}
	riffEnd := 8 + int64(binary.LittleEndian.Uint32(data[4:8]))
	if riffEnd > int64(len(data)) {
		return waveFmt{}, nil, fmt.Errorf("wav: RIFF header claims %d bytes, file has %d (truncated, or the header lies about its length)", riffEnd, len(data))
	}
	var (
		f      *waveFmt
		pcm    []byte
		offset = 12
	)
	for offset+8 <= int(riffEnd) && pcm == nil {
		id := string(data[offset : offset+4])
		size := int64(binary.LittleEndian.Uint32(data[offset+4 : offset+8]))
		body := int64(offset + 8)
		if body+size > riffEnd {
			return waveFmt{}, nil, fmt.Errorf("wav: chunk %q at byte %d claims %d bytes, only %d remain (truncated, or the header lies about its length)", id, offset, size, riffEnd-body)
		}
		chunk := data[body : body+size]
		switch id {
		case "fmt ":
			parsed, err := parseWaveFmt(chunk)
			if err != nil {
				return waveFmt{}, nil, err
			}
			f = &parsed
		case "data":
			if f == nil {
				return waveFmt{}, nil, fmt.Errorf("wav: data chunk at byte %d comes before any fmt chunk", offset)
			}
			pcm = chunk
		}
		offset = int(body + size + size&1) // chunks are padded to even sizes
	}
	if f == nil {
		return waveFmt{}, nil, fmt.Errorf("wav: no fmt chunk")
	}
	if pcm == nil {
		return waveFmt{}, nil, fmt.Errorf("wav: no data chunk")
	}
	if len(pcm)%f.blockAlign != 0 {
		return waveFmt{}, nil, fmt.Errorf("wav: data chunk holds %d bytes, not a multiple of the %d-byte sample frame", len(pcm), f.blockAlign)
	}
	return *f, pcm, nil
}

// parseWaveFmt reads and checks a fmt chunk body.
func parseWaveFmt(b []byte) (waveFmt, error) {
	if len(b) < 16 {
		return waveFmt{}, fmt.Errorf("wav: fmt chunk is %d bytes, want at least 16", len(b))
	}
	f := waveFmt{
		tag:        int(binary.LittleEndian.Uint16(b[0:2])),
		channels:   int(binary.LittleEndian.Uint16(b[2:4])),
		rate:       int(binary.LittleEndian.Uint32(b[4:8])),
		blockAlign: int(binary.LittleEndian.Uint16(b[12:14])),
		bits:       int(binary.LittleEndian.Uint16(b[14:16])),
	}
	if f.tag == waveExtensible {
		if len(b) < 40 {
			return waveFmt{}, fmt.Errorf("wav: WAVE_FORMAT_EXTENSIBLE fmt chunk is %d bytes, want 40", len(b))
		}
		f.tag = int(binary.LittleEndian.Uint16(b[24:26])) // first two bytes of the sub-format GUID
	}
	switch {
	case f.channels < 1 || f.channels > maxChannels:
		return waveFmt{}, fmt.Errorf("wav: %d channels, want 1 to %d", f.channels, maxChannels)
	case f.rate < 1000 || f.rate > 768000:
		return waveFmt{}, fmt.Errorf("wav: sample rate %d Hz, want 1000 to 768000", f.rate)
	case f.tag == wavePCM && f.bits != 16 && f.bits != 24 && f.bits != 32:
		return waveFmt{}, fmt.Errorf("wav: integer PCM with %d bits per sample, want 16, 24 or 32", f.bits)
	case f.tag == waveFloat && f.bits != 32:
		return waveFmt{}, fmt.Errorf("wav: float PCM with %d bits per sample, want 32", f.bits)
	case f.tag != wavePCM && f.tag != waveFloat:
		return waveFmt{}, fmt.Errorf("wav: format tag 0x%04x, want PCM (1) or IEEE float (3)", f.tag)
	case f.blockAlign != f.channels*f.bits/8:
		return waveFmt{}, fmt.Errorf("wav: block align %d, want %d for %d channels of %d bits", f.blockAlign, f.channels*f.bits/8, f.channels, f.bits)
	}
	return f, nil
}

// wavSamples converts little-endian PCM to float32 in [-1, 1]. Float samples
// must be finite (NaN or ±Inf is an error naming the first one) and are
// clipped to [-1, 1], as Whisper's loader (ffmpeg converting to s16) does.
func wavSamples(pcm []byte, f *waveFmt) ([]float32, error) {
	out := make([]float32, len(pcm)/(f.bits/8))
	return out, convertPCM(out, pcm, f, 0)
}

// wavMono converts little-endian PCM to mono float32 samples, mixing the
// channels down (their mean) a block at a time, so the interleaved samples
// are never held whole.
func wavMono(pcm []byte, f *waveFmt) ([]float32, error) {
	if f.channels == 1 {
		return wavSamples(pcm, f)
	}
	frames := len(pcm) / f.blockAlign
	out := make([]float32, frames)
	const block = 4096
	buf := make([]float32, block*f.channels)
	scale := 1 / float32(f.channels)
	for start := 0; start < frames; start += block {
		n := min(block, frames-start)
		b := buf[:n*f.channels]
		if err := convertPCM(b, pcm[start*f.blockAlign:(start+n)*f.blockAlign], f, start*f.channels); err != nil {
			return nil, err
		}
		for i := range n {
			var sum float32
			for _, v := range b[i*f.channels : (i+1)*f.channels] {
				sum += v
			}
			out[start+i] = sum * scale
		}
	}
	return out, nil
}

// convertPCM converts the samples in pcm into dst (len(pcm)/width of them);
// first is the index of pcm's first sample in the file, for error messages.
func convertPCM(dst []float32, pcm []byte, f *waveFmt, first int) error {
	width := f.bits / 8
	switch {
	case f.tag == waveFloat:
		for i := range dst {
			v := math.Float32frombits(binary.LittleEndian.Uint32(pcm[4*i:]))
			if v != v || math.IsInf(float64(v), 0) {
				at := first + i
				return fmt.Errorf("wav: sample %v in frame %d, channel %d (%.3f s): want finite float samples",
					v, at/f.channels, at%f.channels, float64(at/f.channels)/float64(f.rate))
			}
			dst[i] = max(-1, min(1, v))
		}
	case width == 2:
		for i := range dst {
			dst[i] = float32(int16(binary.LittleEndian.Uint16(pcm[2*i:]))) / (1 << 15)
		}
	case width == 3:
		for i := range dst {
			b := pcm[3*i:]
			v := int32(uint32(b[0])<<8|uint32(b[1])<<16|uint32(b[2])<<24) >> 8
			dst[i] = float32(v) / (1 << 23)
		}
	case width == 4:
		for i := range dst {
			dst[i] = float32(float64(int32(binary.LittleEndian.Uint32(pcm[4*i:]))) / (1 << 31))
		}
	}
	return nil
}

// checkPCM16 checks headerless PCM16 input and its declared rate.
func checkPCM16(data []byte, rate int) error {
	if rate < 1000 || rate > 768000 {
		return fmt.Errorf("pcm16: sample rate %d Hz, want 1000 to 768000 (raw PCM must declare its rate)", rate)
	}
	if len(data)%2 != 0 {
		return fmt.Errorf("pcm16: %d bytes, not a whole number of 16-bit samples", len(data))
	}
	return nil
}

// DecodePCM16 decodes headerless little-endian signed 16-bit mono samples at
// the given rate.
func DecodePCM16(data []byte, rate int) (Clip, error) {
	if err := checkPCM16(data, rate); err != nil {
		return Clip{}, err
	}
	f := waveFmt{tag: wavePCM, channels: 1, rate: rate, blockAlign: 2, bits: 16}
	samples, err := wavSamples(data, &f)
	return Clip{Rate: rate, Channels: 1, Samples: samples}, err
}

// EncodeWAV16 writes mono or interleaved samples as a PCM16 WAV file,
// clipping to [-1, 1). It exists for tests, fixtures and the load generator.
func EncodeWAV16(c Clip) []byte {
	n := len(c.Samples) * 2
	b := make([]byte, 44+n)
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+n))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], wavePCM)
	binary.LittleEndian.PutUint16(b[22:], uint16(c.Channels))
	binary.LittleEndian.PutUint32(b[24:], uint32(c.Rate))
	binary.LittleEndian.PutUint32(b[28:], uint32(c.Rate*c.Channels*2))
	binary.LittleEndian.PutUint16(b[32:], uint16(c.Channels*2))
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(n))
	for i, v := range c.Samples {
		s := math.Round(float64(v) * (1 << 15))
		s = math.Max(-(1 << 15), math.Min(1<<15-1, s))
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(int16(s)))
	}
	return b
}

// EncodeWAVFloat32 writes interleaved samples as a 32-bit IEEE float WAV file,
// unclipped (NaN and Inf included). It exists for tests and fixtures.
func EncodeWAVFloat32(c Clip) []byte {
	b := EncodeWAV16(Clip{Rate: c.Rate, Channels: c.Channels, Samples: make([]float32, 2*len(c.Samples))})
	binary.LittleEndian.PutUint16(b[20:], waveFloat)
	binary.LittleEndian.PutUint32(b[28:], uint32(c.Rate*c.Channels*4))
	binary.LittleEndian.PutUint16(b[32:], uint16(c.Channels*4))
	binary.LittleEndian.PutUint16(b[34:], 32)
	for i, v := range c.Samples {
		binary.LittleEndian.PutUint32(b[44+4*i:], math.Float32bits(v))
	}
	return b
}
