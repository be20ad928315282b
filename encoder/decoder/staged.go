package decoder

import (
	"fmt"

	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

// LoadStaged loads the decoder of a staged whole model: its configuration
// from the copied config.json, its BF16 weights viewed in place in the
// entry's decoder.safetensors (New copies what it packs, so m may be closed
// afterwards). An encoder-only entry is an error naming what it can do.
func LoadStaged(m *staged.Model, opts Options) (*Decoder, error) {
	src, err := m.Decoder()
	if err != nil {
		return nil, err
	}
	cfg, err := ReadConfig(m.HFDir())
	if err != nil {
		return nil, fmt.Errorf("staged dir %s: %w", m.Dir(), err)
	}
	if cfg.DModel != m.Config().DModel || cfg.MaxSourcePositions != m.Config().MaxSourcePositions {
		return nil, fmt.Errorf("staged dir %s: decoder d_model %d, %d source positions; the encoder has %d, %d",
			m.Dir(), cfg.DModel, cfg.MaxSourcePositions, m.Config().DModel, m.Config().MaxSourcePositions)
	}
	d, err := New(cfg, src, opts)
	if err != nil {
		return nil, fmt.Errorf("load decoder from %s: %w", m.Dir(), err)
	}
	return d, nil
}
