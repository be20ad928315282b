// Package mel computes Whisper's log-mel spectrogram, exactly as Whisper's
// audio.py does, from 16 kHz mono samples:
//
//	pad or trim to 480,000 samples (30 s);
//	STFT, n_fft 400, hop 160, periodic Hann window, centred with reflect
//	padding; drop the last frame (3000 frames remain);
//	power = |X|²; mel = filters @ power (Whisper's own filterbank);
//	log10(max(mel, 1e-10)); clamp below at (global max − 8); (x + 4) / 4.
//
// The result is [n_mels, 3000] in row-major order, the encoder's input.
package mel

import (
	"fmt"
	"math"
	"sync"
)

// Whisper's front-end constants.
const (
	// SampleRate is the input rate in Hz.
	SampleRate = 16000
	// NFFT is the STFT frame length and FFT size.
	NFFT = 400
	// Hop is the STFT hop in samples (10 ms).
	Hop = 160
	// Bins is the number of one-sided frequency bins, NFFT/2 + 1.
	Bins = NFFT/2 + 1
	// WindowSamples is one encoder window, 30 s at 16 kHz.
	WindowSamples = 30 * SampleRate
	// Frames is the number of log-mel frames in a window.
	Frames = WindowSamples / Hop
)

// hann is the periodic Hann window torch.hann_window(400) uses.
var hann = func() []float64 {
	w := make([]float64, NFFT)
	for i := range w {
		w[i] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/NFFT)
	}
	return w
}()

// workspace is the per-call scratch of LogMel, pooled.
type workspace struct {
	fft   *realFFT
	frame []float64
	power []float64
	mel   []float64
}

var workspaces = sync.Pool{New: func() any {
	f, err := newRealFFT(NFFT)
	if err != nil {
		panic(err) // NFFT is a constant that factors into 2 and 5
	}
	return &workspace{fft: f, frame: make([]float64, NFFT), power: make([]float64, Bins), mel: make([]float64, 128)}
}}

// LogMel computes Whisper's log-mel spectrogram of one 30 s window of 16 kHz
// mono samples (shorter input is zero-padded, longer is trimmed) with nMels
// bands (80 or 128). The result has nMels*Frames values, band by band.
func LogMel(samples []float32, nMels int) ([]float32, error) {
	fb, err := Filters(nMels)
	if err != nil {
		return nil, err
	}
	out := make([]float32, nMels*Frames)
	logMelInto(out, samples, fb)
	return out, nil
}

// logMelInto computes the window's log-mel into out [nMels*Frames].
func logMelInto(out []float32, samples []float32, fb *Filterbank) {
	ws := workspaces.Get().(*workspace)
	defer workspaces.Put(ws)
	n := fb.NMels
	maxLog := math.Inf(-1)
	for t := range Frames {
		frameAt(ws.frame, samples, t*Hop-NFFT/2)
		ws.fft.power(ws.power, ws.frame)
		fb.apply(ws.mel[:n], ws.power)
		for m, v := range ws.mel[:n] {
			l := math.Log10(math.Max(v, 1e-10))
			maxLog = math.Max(maxLog, l)
			out[m*Frames+t] = float32(l)
		}
	}
	floor := float32(maxLog - 8)
	for i, v := range out {
		out[i] = (max(v, floor) + 4) / 4
	}
}

// frameAt fills dst with the Hann-windowed frame starting at sample start of
// the window (start may be negative): the window is samples padded with zeros
// or trimmed to WindowSamples, then reflect-padded by NFFT/2 on both sides.
func frameAt(dst []float64, samples []float32, start int) {
	for i := range dst {
		dst[i] = hann[i] * float64(sampleAt(samples, reflect(start+i)))
	}
}

// reflect maps an index of the reflect-padded window to the window itself
// (torch's "reflect": the edge sample is not repeated).
func reflect(i int) int {
	if i < 0 {
		return -i
	}
	if i >= WindowSamples {
		return 2*(WindowSamples-1) - i
	}
	return i
}

// sampleAt is samples[i] for the window padded with zeros to WindowSamples.
func sampleAt(samples []float32, i int) float32 {
	if i < len(samples) {
		return samples[i]
	}
	return 0
}

// Windows cuts 16 kHz audio into Whisper's 30 s windows, in order. The last
// window may be shorter (LogMel pads it); audio of any length, including
// none, yields at least one window.
func Windows(samples []float32) [][]float32 {
	var w [][]float32
	for start := 0; start < len(samples) || start == 0; start += WindowSamples {
		w = append(w, samples[start:min(start+WindowSamples, len(samples))])
	}
	return w
}

// Check validates a log-mel tensor given by a client: shape [nMels, frames]
// with nMels the model's, 1 ≤ frames ≤ Frames, and every value finite and
// within ±MaxLogMel.
func Check(data []float32, shape []int, nMels int) error {
	if len(shape) != 2 {
		return fmt.Errorf("log-mel shape %v: want 2 dimensions [n_mels, frames]", shape)
	}
	if shape[0] != nMels {
		return fmt.Errorf("log-mel shape %v: n_mels %d, this model takes %d", shape, shape[0], nMels)
	}
	if shape[1] < 1 || shape[1] > Frames {
		return fmt.Errorf("log-mel shape %v: %d frames, want 1 to %d (one 30 s window)", shape, shape[1], Frames)
	}
	if len(data) != shape[0]*shape[1] {
		return fmt.Errorf("log-mel shape %v holds %d values, got %d", shape, shape[0]*shape[1], len(data))
	}
	for i, v := range data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("log-mel value %v at [%d, %d]: want finite values", v, i/shape[1], i%shape[1])
		}
		if v < -MaxLogMel || v > MaxLogMel {
			return fmt.Errorf("log-mel value %v at [%d, %d]: want values within ±%v (Whisper's normalised log-mel lies within about [-1.5, 2.5])", v, i/shape[1], i%shape[1], MaxLogMel)
		}
	}
	return nil
}

// MaxLogMel bounds the magnitude of a client's log-mel values. Whisper's
// normalised log-mel, (max(log10 S, max − 8) + 4) / 4 of a signal in
// [-1, 1], lies within about [-1.5, 2.5]; the bound leaves ample room for
// other front ends while keeping the encoder's sums far from float32
// overflow (a 3e38 input would make its hidden states Inf/NaN).
const MaxLogMel = 100

// Pad returns a [nMels, Frames] log-mel from a [nMels, frames] one by
// appending frames of silence. Whisper pads the audio with zeros to 30 s
// before its log-mel, and the log-mel of silence after normalisation is
// (max(-10, maxLog-8) + 4) / 4 = max(max(data) - 2, -1.5), so that is the
// value appended (the encoder/model package pads short input the same way).
// frames == Frames returns data unchanged.
func Pad(data []float32, nMels, frames int) []float32 {
	if frames == Frames {
		return data
	}
	hi := float32(math.Inf(-1))
	for _, v := range data {
		hi = max(hi, v)
	}
	silence := max(hi-2, -1.5)
	out := make([]float32, nMels*Frames)
	for m := range nMels {
		row := out[m*Frames : (m+1)*Frames]
		copy(row, data[m*frames:(m+1)*frames])
		for t := frames; t < Frames; t++ {
			row[t] = silence
		}
	}
	return out
}
