package audio

import (
	"bytes"
	"fmt"
	"math"

	"github.com/mewkiz/flac"
)

// Header is what an audio stream says about itself before any sample is
// decoded: enough to know what decoding it will cost.
type Header struct {
	Format   Format
	Rate     int // Hz
	Channels int
	// Frames is the number of sample frames (samples per channel), or -1
	// when the header does not say (a FLAC stream may leave it out).
	Frames int64
	// MaxBlock is the largest number of frames decoded at once (a FLAC
	// block; 0 for WAV and raw PCM, converted in place).
	MaxBlock int
}

// Seconds is the duration the header declares (-1 when unknown).
func (h Header) Seconds() float64 {
	if h.Frames < 0 {
		return -1
	}
	return float64(h.Frames) / float64(h.Rate)
}

// Probe reads the header of data (FormatUnknown sniffs it) without decoding
// any sample. rate is the sample rate of FormatPCM16 input.
func Probe(data []byte, f Format, rate int) (Header, error) {
	if len(data) == 0 {
		return Header{}, ErrEmpty
	}
	if f == FormatUnknown {
		f = Sniff(data)
	}
	switch f {
	case FormatWAV:
		wf, pcm, err := parseWAV(data)
		if err != nil {
			return Header{}, err
		}
		return Header{Format: f, Rate: wf.rate, Channels: wf.channels, Frames: int64(len(pcm) / wf.blockAlign)}, nil
	case FormatPCM16:
		if err := checkPCM16(data, rate); err != nil {
			return Header{}, err
		}
		return Header{Format: f, Rate: rate, Channels: 1, Frames: int64(len(data) / 2)}, nil
	case FormatFLAC:
		return probeFLAC(data)
	}
	return Header{}, fmt.Errorf("audio: unrecognised data (first bytes %q): want a RIFF/WAVE or fLaC header, or declare raw pcm16 with its rate", head(data))
}

// probeFLAC reads a FLAC stream's STREAMINFO.
func probeFLAC(data []byte) (h Header, err error) {
	defer func() {
		if r := recover(); r != nil {
			h, err = Header{}, fmt.Errorf("flac: malformed stream header: %v", r)
		}
	}()
	stream, err := flac.New(bytes.NewReader(data))
	if err != nil {
		return Header{}, fmt.Errorf("flac: stream header: %w", err)
	}
	info := stream.Info
	if info.SampleRate < 1000 {
		return Header{}, fmt.Errorf("flac: sample rate %d Hz, want at least 1000", info.SampleRate)
	}
	h = Header{Format: FormatFLAC, Rate: int(info.SampleRate), Channels: int(info.NChannels), Frames: -1, MaxBlock: int(info.BlockSizeMax)}
	if info.NSamples > 0 && info.NSamples < math.MaxInt64/8 {
		h.Frames = int64(info.NSamples)
	}
	if h.MaxBlock == 0 {
		h.MaxBlock = 65535
	}
	return h, nil
}

// LoadBytes bounds the memory Load allocates for audio with this header
// and at most maxSeconds of it (used when the header does not give its
// length): the mono samples at the source rate and at 16 kHz (4 bytes each),
// a FLAC block being decoded (channels × block × 16 bytes) and the
// resampler's filter table. The channels are mixed down as they are decoded,
// so they cost only the block; decoding time still grows with
// rate × channels × duration.
func (h Header) LoadBytes(maxSeconds float64) int64 {
	frames := h.Frames
	if frames < 0 || maxSeconds > 0 && float64(frames) > maxSeconds*float64(h.Rate) {
		frames = int64(math.Ceil(maxSeconds * float64(h.Rate)))
	}
	out := (frames*SampleRate + int64(h.Rate) - 1) / int64(h.Rate)
	block := int64(h.MaxBlock) * int64(h.Channels) * 16
	return 4*(frames+out) + block + kernelBytes(h.Rate, SampleRate)
}
