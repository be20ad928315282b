package audio

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"io"

	"github.com/mewkiz/flac"
)

// DecodeFLAC decodes a native FLAC stream (any bit depth from 4 to 32, up to
// 8 channels). Every frame's CRC is checked by the decoder, and the audio's
// MD5 against the STREAMINFO signature when the encoder recorded one.
func DecodeFLAC(data []byte) (Clip, error) {
	return decodeFLAC(data, 0, false)
}

// decodeFLAC decodes data, giving up as soon as the audio is known to hold
// more than maxSeconds (0: no limit), so an over-long upload is refused
// before it is decoded in full. With mono the channels are mixed down (their
// mean) frame by frame and the clip has one channel.
func decodeFLAC(data []byte, maxSeconds float64, mono bool) (clip Clip, err error) {
	defer func() {
		// The FLAC library reports malformed input with errors, but a decoder
		// fed arbitrary bytes from the network must not take the server down
		// if it ever panics instead.
		if r := recover(); r != nil {
			clip, err = Clip{}, fmt.Errorf("flac: malformed stream: %v", r)
		}
	}()
	stream, err := flac.New(bytes.NewReader(data))
	if err != nil {
		return Clip{}, fmt.Errorf("flac: stream header: %w", err)
	}
	info := stream.Info
	if info.SampleRate < 1000 {
		return Clip{}, fmt.Errorf("flac: sample rate %d Hz, want at least 1000", info.SampleRate)
	}
	if secs := float64(info.NSamples) / float64(info.SampleRate); maxSeconds > 0 && secs > maxSeconds {
		return Clip{}, tooLong(secs, maxSeconds)
	}
	channels, bits := int(info.NChannels), int(info.BitsPerSample)
	scale := 1 / float32(uint64(1)<<(bits-1))
	width := channels // values stored per frame
	if mono {
		width = 1
	}
	var samples []float32
	switch {
	case info.NSamples > 0 && maxSeconds > 0:
		// The header's length is bounded by maxSeconds (and admitted by the
		// caller from Probe's LoadBytes), so it can be trusted this far.
		samples = make([]float32, 0, int(min(float64(info.NSamples), maxSeconds*float64(info.SampleRate)))*width)
	case info.NSamples > 0 && info.NSamples*uint64(width) <= uint64(len(data))*8:
		samples = make([]float32, 0, int(info.NSamples)*width)
	}
	mix := scale / float32(channels)
	sum := md5.New()
	for n := 0; ; n++ {
		frame, err := stream.ParseNext()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Clip{}, fmt.Errorf("flac: frame %d: %w", n, err)
		}
		if len(frame.Subframes) != channels || int(frame.BitsPerSample) != bits {
			return Clip{}, fmt.Errorf("flac: frame %d has %d channels of %d bits, stream header says %d of %d", n, len(frame.Subframes), frame.BitsPerSample, channels, bits)
		}
		if secs := float64(len(samples)/width) / float64(info.SampleRate); maxSeconds > 0 && secs > maxSeconds {
			return Clip{}, fmt.Errorf("audio: longer than the limit of %.0f s (%.2f s decoded so far)", maxSeconds, secs)
		}
		frame.Hash(sum)
		for i := range frame.Subframes[0].Samples {
			if mono {
				var sum float32
				for _, sub := range frame.Subframes {
					sum += float32(sub.Samples[i])
				}
				samples = append(samples, sum*mix)
				continue
			}
			for _, sub := range frame.Subframes {
				samples = append(samples, float32(sub.Samples[i])*scale)
			}
		}
	}
	frames := uint64(len(samples) / width)
	if info.NSamples != 0 && frames != info.NSamples {
		return Clip{}, fmt.Errorf("flac: decoded %d samples per channel, STREAMINFO says %d (truncated stream)", frames, info.NSamples)
	}
	if info.MD5sum != [16]byte{} && !bytes.Equal(sum.Sum(nil), info.MD5sum[:]) {
		return Clip{}, fmt.Errorf("flac: MD5 of the decoded audio %x does not match STREAMINFO's %x", sum.Sum(nil), info.MD5sum)
	}
	return Clip{Rate: int(info.SampleRate), Channels: width, Samples: samples}, nil
}
