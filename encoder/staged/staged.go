// Package staged defines the staged-weights directory: the output of
// `whisper-encoder stage` and the input of every encoder backend.
//
// A staged directory, named by its content key inside the cache, holds
//
//	model.safetensors  BF16 tensors under canonical Hugging Face names
//	                   (conv1.weight [d, n_mels, 3], layers.{i}.fc1.weight
//	                   [ffn, d], ...; see Config.Tensors)
//	config.json        the encoder configuration (Config, HF field names)
//	manifest.json      provenance, per-tensor hashes and error stats (Manifest)
//
// and, staged from a whole model, decoder.safetensors and hf/ (see
// DecoderFile and HFDir): the manifest then records the decoder, the
// tokenizer and the Capabilities.
//
// It is written into a temporary sibling and renamed into place, so a
// directory under its final name is complete. Open validates one and hands out
// zero-copy BF16 views of the memory-mapped tensors.
package staged

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/xdna-whisper/xdna-whisper/encoder/safetensors"
)

// FormatVersion is the version of the staged-directory format this build
// writes and the newest it reads.
const FormatVersion = 1

// File names inside a staged directory.
const (
	WeightsFile  = "model.safetensors"
	ConfigFile   = "config.json"
	ManifestFile = "manifest.json"
)

// maxJSON bounds the size of config.json and manifest.json read by Open.
const maxJSON = 64 << 20

// Model is an opened staged directory.
type Model struct {
	dir      string
	config   Config
	manifest Manifest
	weights  *safetensors.File
	decoder  *safetensors.File // decoder.safetensors of a whole-model entry, else nil
}

// Tensor is a BF16 tensor view: Data holds the bfloat16 bits in C order and
// stays valid until the Model is closed. Do not modify it.
type Tensor struct {
	Name  string
	Shape []int
	Data  []uint16
}

// Open validates the staged directory dir and memory-maps its weights. It
// checks that the directory is complete, that its format version is not newer
// than FormatVersion, that the config is valid and that model.safetensors
// holds exactly the tensors the config implies, as BF16 with the right shapes,
// in agreement with the manifest. It does not re-hash the tensors (see Verify).
func Open(dir string) (*Model, error) {
	m := &Model{dir: dir}
	if err := readJSON(dir, ManifestFile, &m.manifest, checkVersion); err != nil {
		return nil, err
	}
	if err := readJSON(dir, ConfigFile, &m.config, nil); err != nil {
		return nil, err
	}
	if err := m.config.Validate(); err != nil {
		return nil, fmt.Errorf("staged dir %s: %s: %w", dir, ConfigFile, err)
	}
	w, err := safetensors.Open(filepath.Join(dir, WeightsFile))
	if err != nil {
		return nil, fmt.Errorf("staged dir %s: %w", dir, err)
	}
	m.weights = w
	if err := m.check(); err != nil {
		_ = w.Close() // a read-only mapping: the check's error is the one to report
		return nil, fmt.Errorf("staged dir %s: %w", dir, err)
	}
	if err := m.openDecoder(); err != nil {
		_ = w.Close() // a read-only mapping: the decoder's error is the one to report
		return nil, fmt.Errorf("staged dir %s: %w", dir, err)
	}
	return m, nil
}

// checkVersion rejects a manifest written by a newer format before the rest
// of it is decoded.
func checkVersion(raw []byte) error {
	var v struct {
		FormatVersion *int `json:"formatVersion"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	switch {
	case v.FormatVersion == nil:
		return errors.New("no formatVersion")
	case *v.FormatVersion > FormatVersion:
		return fmt.Errorf("format version %d is newer than this build's %d", *v.FormatVersion, FormatVersion)
	case *v.FormatVersion < 1:
		return fmt.Errorf("format version %d, want 1..%d", *v.FormatVersion, FormatVersion)
	}
	return nil
}

// readJSON decodes dir/name into v after an optional check of the raw bytes.
func readJSON(dir, name string, v any, check func([]byte) error) error {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("staged dir %s: incomplete: no %s", dir, name)
		}
		return fmt.Errorf("staged dir %s: %w", dir, err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxJSON+1))
	if err != nil {
		return fmt.Errorf("staged dir %s: %s: %w", dir, name, err)
	}
	if len(raw) > maxJSON {
		return fmt.Errorf("staged dir %s: %s is larger than %d bytes", dir, name, maxJSON)
	}
	if check != nil {
		if err := check(raw); err != nil {
			return fmt.Errorf("staged dir %s: %s: %w", dir, name, err)
		}
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("staged dir %s: %s: %w", dir, name, err)
	}
	return nil
}

// check compares the safetensors header with the config and the manifest.
func (m *Model) check() error {
	specs := m.config.Tensors()
	have := m.weights.Tensors()
	if len(have) != len(specs) {
		return fmt.Errorf("%s holds %d tensors, config %s implies %d", WeightsFile, len(have), m.config.summary(), len(specs))
	}
	records := make(map[string]TensorRecord, len(m.manifest.Tensors))
	for _, r := range m.manifest.Tensors {
		records[r.Name] = r
	}
	if len(records) != len(specs) {
		return fmt.Errorf("%s lists %d tensors, config %s implies %d", ManifestFile, len(records), m.config.summary(), len(specs))
	}
	for _, s := range specs {
		t, err := m.weights.Tensor(s.Name)
		if err != nil {
			return fmt.Errorf("%s: config %s implies tensor %s %v, not found", WeightsFile, m.config.summary(), s.Name, s.Shape)
		}
		if t.DType != safetensors.BF16 {
			return fmt.Errorf("%s: tensor %s: dtype %s, want BF16", WeightsFile, s.Name, t.DType)
		}
		if !slices.Equal(t.Shape, s.Shape) {
			return fmt.Errorf("%s: tensor %s: shape %v, want %v (config %s)", WeightsFile, s.Name, t.Shape, s.Shape, m.config.summary())
		}
		r, ok := records[s.Name]
		if !ok {
			return fmt.Errorf("%s: no record of tensor %s", ManifestFile, s.Name)
		}
		if !slices.Equal(r.Shape, s.Shape) {
			return fmt.Errorf("%s: tensor %s: shape %v, %s has %v", ManifestFile, s.Name, r.Shape, WeightsFile, t.Shape)
		}
	}
	return nil
}

func (c Config) summary() string {
	return fmt.Sprintf("(d_model %d, %d layers, ffn %d, %d mels, %d positions)",
		c.DModel, c.EncoderLayers, c.EncoderFFNDim, c.NumMelBins, c.MaxSourcePositions)
}

// Dir is the staged directory's path.
func (m *Model) Dir() string { return m.dir }

// Config is the encoder configuration.
func (m *Model) Config() Config { return m.config }

// Manifest is the staged directory's manifest.
func (m *Model) Manifest() Manifest { return m.manifest }

// Tensor returns a zero-copy BF16 view of the tensor called name (a canonical
// name from Config.Tensors).
func (m *Model) Tensor(name string) (Tensor, error) {
	if m.weights == nil {
		return Tensor{}, fmt.Errorf("staged dir %s: tensor %s: model is closed", m.dir, name)
	}
	t, err := m.weights.Tensor(name)
	if err != nil {
		return Tensor{}, fmt.Errorf("staged dir %s: %w", m.dir, err)
	}
	data, err := t.Uint16s()
	if err != nil {
		return Tensor{}, fmt.Errorf("staged dir %s: %w", m.dir, err)
	}
	return Tensor{Name: name, Shape: slices.Clone(t.Shape), Data: data}, nil
}

// Verify re-hashes every tensor (the decoder's too) and compares it with the
// manifest's sha256.
func (m *Model) Verify() error {
	if err := verifyFile(m.dir, WeightsFile, m.weights, m.manifest.Tensors); err != nil {
		return err
	}
	if m.decoder != nil {
		return verifyFile(m.dir, DecoderFile, m.decoder, m.manifest.Decoder.Tensors)
	}
	return nil
}

func verifyFile(dir, name string, f *safetensors.File, records []TensorRecord) error {
	for _, r := range records {
		t, err := f.Tensor(r.Name)
		if err != nil {
			return fmt.Errorf("staged dir %s: %s: %w", dir, name, err)
		}
		sum := sha256.Sum256(t.Data)
		if got := hex.EncodeToString(sum[:]); got != r.SHA256 {
			return fmt.Errorf("staged dir %s: %s: tensor %s: sha256 %s, manifest says %s", dir, name, r.Name, got, r.SHA256)
		}
	}
	return nil
}

// Close unmaps the weights; tensor views must not be used afterwards.
func (m *Model) Close() error {
	if m.weights == nil {
		return nil
	}
	err := m.weights.Close()
	m.weights = nil
	if m.decoder != nil {
		err = errors.Join(err, m.decoder.Close())
		m.decoder = nil
	}
	return err
}

// Key is the content key of staging a source whose bytes hash to sourceSHA256
// (hex; for multi-file sources, the ONNX file's hash followed by each external
// data file's) to precision: the hex sha256 of those hashes, the precision and
// FormatVersion, cut to 40 hex digits (160 bits) so it also fits a Kubernetes
// label value. It names the staged directory in the cache.
func Key(precision Precision, sourceSHA256 ...string) string {
	h := sha256.New()
	fmt.Fprintf(h, "xdna-whisper staged format %d\nprecision %s\n", FormatVersion, precision)
	for _, s := range sourceSHA256 {
		fmt.Fprintf(h, "source %s\n", s)
	}
	return hex.EncodeToString(h.Sum(nil))[:40]
}
