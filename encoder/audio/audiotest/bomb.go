// Package audiotest makes hostile audio for tests: files whose headers
// promise far more decoded audio than their size suggests.
package audiotest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/mewkiz/flac"
	"github.com/mewkiz/flac/frame"
	"github.com/mewkiz/flac/meta"
)

var bombs sync.Map // bombKey → []byte

type bombKey struct {
	rate, channels int
	seconds        float64
}

// FLACBomb is a valid FLAC stream of seconds of 16-bit silence at rate Hz
// over channels channels (1 to 8), written as constant subframes of 65535
// samples: about 30 bytes per block, so 600 s of 8-channel 96 kHz audio
// (1.8 GB as float32) fits in ~30 KB. The encoder hashes every sample (a few
// seconds for that one), so results are kept for the process; callers must
// not modify them.
func FLACBomb(rate, channels int, seconds float64) ([]byte, error) {
	key := bombKey{rate, channels, seconds}
	if b, ok := bombs.Load(key); ok {
		return b.([]byte), nil
	}
	b, err := flacBomb(rate, channels, seconds)
	if err == nil {
		bombs.Store(key, b)
	}
	return b, err
}

func flacBomb(rate, channels int, seconds float64) ([]byte, error) {
	if channels < 1 || channels > 8 {
		return nil, fmt.Errorf("audiotest: %d channels, want 1 to 8", channels)
	}
	total := uint64(seconds * float64(rate))
	const block = 65535
	info := &meta.StreamInfo{
		BlockSizeMin: 16, BlockSizeMax: block, SampleRate: uint32(rate),
		NChannels: uint8(channels), BitsPerSample: 16, NSamples: total,
	}
	var buf bytes.Buffer
	enc, err := flac.NewEncoder(&buf, info)
	if err != nil {
		return nil, err
	}
	enc.EnablePredictionAnalysis(false)
	zeros := make([]int32, block)
	for done := uint64(0); done < total; {
		n := int(min(block, total-done))
		f := &frame.Frame{Header: frame.Header{
			HasFixedBlockSize: false, BlockSize: uint16(n), SampleRate: uint32(rate),
			Channels: frame.Channels(channels - 1), BitsPerSample: 16,
		}}
		for range channels {
			f.Subframes = append(f.Subframes, &frame.Subframe{SubHeader: frame.SubHeader{Pred: frame.PredConstant}, Samples: zeros[:n], NSamples: n})
		}
		if err := enc.WriteFrame(f); err != nil {
			return nil, fmt.Errorf("audiotest: block at sample %d: %w", done, err)
		}
		done += uint64(n)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WithFLACLength returns a copy of a FLAC stream (with STREAMINFO as its
// first metadata block, as FLACBomb writes it) whose header declares frames
// samples per channel: a header that promises more audio than the stream
// holds, for tests that only need the header (admission happens before
// decoding; a decoder would find the stream short).
func WithFLACLength(b []byte, frames uint64) []byte {
	c := append([]byte(nil), b...)
	// "fLaC", a 4-byte block header, then STREAMINFO: the 36-bit total of
	// samples starts in the low 4 bits of its byte 13.
	const at = 8 + 13
	c[at] = c[at]&0xF0 | byte(frames>>32)&0x0F
	binary.BigEndian.PutUint32(c[at+1:], uint32(frames))
	return c
}
