package mel

import (
	"archive/zip"
	"bytes"
	_ "embed"
	"fmt"
	"sync"

	"github.com/xdna-whisper/xdna-whisper/encoder/npy"
)

// filtersNPZ is Whisper's own mel filterbank, mel_filters.npz from the
// openai/whisper repository (MIT License, Copyright (c) 2022 OpenAI): arrays
// mel_80 [80, 201] and mel_128 [128, 201], float32, for n_fft 400 at 16 kHz.
// A test checks it equals ../shared/data/whisper/mel_filters.npz.
//
//go:embed mel_filters.npz
var filtersNPZ []byte

// Filterbank is a mel filterbank [NMels, Bins] stored by its non-zero run in
// each row (Whisper's triangular filters are a few bins wide).
type Filterbank struct {
	// NMels is the number of mel bands (rows).
	NMels int
	rows  []filterRow
}

// filterRow is one filter: weights for bins first, first+1, ...
type filterRow struct {
	first   int
	weights []float64
}

var (
	filterbanks   = map[int]*Filterbank{}
	filterbanksMu sync.Mutex
)

// Filters returns Whisper's filterbank with nMels bands (80 or 128).
func Filters(nMels int) (*Filterbank, error) {
	filterbanksMu.Lock()
	defer filterbanksMu.Unlock()
	if fb, ok := filterbanks[nMels]; ok {
		return fb, nil
	}
	dense, err := loadFilters(filtersNPZ, nMels)
	if err != nil {
		return nil, err
	}
	fb := sparseFilterbank(dense)
	filterbanks[nMels] = fb
	return fb, nil
}

// loadFilters reads the array mel_<nMels> [nMels, Bins] from an .npz archive.
func loadFilters(npz []byte, nMels int) (npy.Array, error) {
	if nMels != 80 && nMels != 128 {
		return npy.Array{}, fmt.Errorf("mel: n_mels %d, want 80 or 128 (Whisper's filterbanks)", nMels)
	}
	zr, err := zip.NewReader(bytes.NewReader(npz), int64(len(npz)))
	if err != nil {
		return npy.Array{}, fmt.Errorf("mel: filterbank archive: %w", err)
	}
	name := fmt.Sprintf("mel_%d.npy", nMels)
	f, err := zr.Open(name)
	if err != nil {
		return npy.Array{}, fmt.Errorf("mel: filterbank archive: %w", err)
	}
	defer f.Close()
	a, err := npy.Read(f, nMels*Bins)
	if err != nil {
		return npy.Array{}, fmt.Errorf("mel: filterbank %s: %w", name, err)
	}
	if len(a.Shape) != 2 || a.Shape[0] != nMels || a.Shape[1] != Bins {
		return npy.Array{}, fmt.Errorf("mel: filterbank %s: shape %v, want [%d %d]", name, a.Shape, nMels, Bins)
	}
	return a, nil
}

// sparseFilterbank keeps each row's span from its first to its last non-zero.
func sparseFilterbank(dense npy.Array) *Filterbank {
	n := dense.Shape[0]
	fb := &Filterbank{NMels: n, rows: make([]filterRow, n)}
	for m := range n {
		row := dense.Data[m*Bins : (m+1)*Bins]
		first, last := Bins, -1
		for k, w := range row {
			if w != 0 {
				first, last = min(first, k), k
			}
		}
		if last < 0 {
			continue // an all-zero filter (none in Whisper's banks) contributes nothing
		}
		r := filterRow{first: first, weights: make([]float64, last-first+1)}
		for k := range r.weights {
			r.weights[k] = float64(row[first+k])
		}
		fb.rows[m] = r
	}
	return fb
}

// Dense returns the filterbank as a row-major [NMels, Bins] matrix.
func (fb *Filterbank) Dense() []float32 {
	out := make([]float32, fb.NMels*Bins)
	for m, r := range fb.rows {
		for k, w := range r.weights {
			out[m*Bins+r.first+k] = float32(w)
		}
	}
	return out
}

// apply computes one frame's mel energies: out[m] = Σ_k filter[m][k]·power[k].
func (fb *Filterbank) apply(out, power []float64) {
	for m, r := range fb.rows {
		var s float64
		for k, w := range r.weights {
			s += w * power[r.first+k]
		}
		out[m] = s
	}
}
