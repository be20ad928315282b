package server

import (
	"context"
	"fmt"

	"github.com/xdna-whisper/xdna-whisper/encoder/mel"
	"github.com/xdna-whisper/xdna-whisper/encoder/model"
	"github.com/xdna-whisper/xdna-whisper/encoder/staged"
)

// modelEncoder runs batches on the CPU encoder.
type modelEncoder struct {
	enc   *model.Encoder
	nMels int
}

// ModelEncoder adapts a loaded encoder (encoder/model) to BatchEncoder.
func ModelEncoder(enc *model.Encoder) BatchEncoder {
	return modelEncoder{enc: enc, nMels: enc.Config().NumMelBins}
}

// EncodeWindows runs each window of a batch through the encoder into its
// own output.
func (m modelEncoder) EncodeWindows(ctx context.Context, mels, outs [][]float32) error {
	if len(mels) != len(outs) {
		return fmt.Errorf("encode: %d windows, %d outputs", len(mels), len(outs))
	}
	for i := range mels {
		in := model.Tensor{Shape: []int{1, m.nMels, mel.Frames}, Data: mels[i]}
		if err := m.enc.EncodeInto(ctx, outs[i], in); err != nil {
			return fmt.Errorf("window %d of %d: %w", i+1, len(mels), err)
		}
	}
	return nil
}

// Encode runs one batch [batch, n_mels, Frames] through the encoder.
func (m modelEncoder) Encode(ctx context.Context, logMel []float32, batch int) ([]float32, error) {
	out, err := m.enc.Encode(ctx, model.Tensor{Shape: []int{batch, m.nMels, mel.Frames}, Data: logMel})
	if err != nil {
		return nil, err
	}
	return out.Data, nil
}

// InfoFor describes the staged model in dir as run by backend ("cpu", "npu").
func InfoFor(dir, backend string) (Info, error) {
	sm, err := staged.Open(dir)
	if err != nil {
		return Info{}, err
	}
	defer sm.Close()
	c, man := sm.Config(), sm.Manifest()
	info := Info{
		ModelKey: man.Key, Backend: backend,
		NMels: c.NumMelBins, DModel: c.DModel, Layers: c.EncoderLayers, Heads: c.EncoderAttentionHeads,
		FFNDim: c.EncoderFFNDim, InputFrames: c.InputFrames(), Positions: c.MaxSourcePositions,
		Precision: string(man.Precision), Source: man.Source, SourcePrecision: string(man.SourcePrecision),
		LossySource: man.LossySource, Parameters: man.Sizes.Params,
	}
	if err := info.check(); err != nil {
		return Info{}, fmt.Errorf("staged model %s: %w", dir, err)
	}
	return info, nil
}
