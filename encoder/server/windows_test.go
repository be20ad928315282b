package server

import (
	"context"
	"slices"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/mel"
	"github.com/xdna-whisper/xdna-whisper/encoder/model"
)

// TestEncodeWindowsEqualsBatch: the real encoder's EncodeWindows writes each
// window's hidden states, bit for bit, as Encode's batch output holds them,
// and refuses mismatched outputs and short windows.
func TestEncodeWindowsEqualsBatch(t *testing.T) {
	enc, err := model.Load(stagedDemo(t), model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	me := ModelEncoder(enc)
	we, ok := me.(WindowsEncoder)
	if !ok {
		t.Fatalf("ModelEncoder %T is not a WindowsEncoder", me)
	}
	nm, frame := enc.Config().NumMelBins, enc.Config().NumMelBins*mel.Frames
	size := enc.Config().MaxSourcePositions * enc.Config().DModel
	const n = 3
	mels, outs := make([][]float32, n), make([][]float32, n)
	var stacked []float32
	for i := range n {
		mels[i] = make([]float32, frame)
		for k := range mels[i] {
			mels[i][k] = float32((k*7+i*13)%17)/17 - 0.5
		}
		stacked = append(stacked, mels[i]...)
		outs[i] = make([]float32, size)
	}
	batch, err := me.Encode(context.Background(), stacked, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := we.EncodeWindows(context.Background(), mels, outs); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if !slices.Equal(outs[i], batch[i*size:(i+1)*size]) {
			t.Errorf("window %d of %d: EncodeWindows differs from Encode's batch output", i+1, n)
		}
	}
	if err := we.EncodeWindows(context.Background(), mels, outs[:2]); err == nil {
		t.Error("3 windows into 2 outputs: no error")
	}
	short := [][]float32{make([]float32, nm)}
	if err := we.EncodeWindows(context.Background(), short, outs[:1]); err == nil {
		t.Error("a window of 1 frame given as a full one: no error")
	}
}
