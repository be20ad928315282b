package server

import (
	"context"
	"sync"
)

// gatedEncoder is a test double used ONLY for behaviours that need control of
// timing (batch formation, a full queue, cancellation while queued, drain
// with requests in flight): it blocks every batch until the test lets it go.
// Its output is a cheap function of its input — position p, channel c of a
// window is mean(window's log-mel) + p + c/1000 — so each response can be
// checked against the request it answers. Tests of the data path use the real
// encoder (server_model_test.go).
type gatedEncoder struct {
	info Info
	gate chan struct{} // each batch takes one token; nil: never blocks

	mu      sync.Mutex
	batches []int
	started chan int // receives each batch's size as it starts computing
}

func newGated(info Info, blocking bool) *gatedEncoder {
	g := &gatedEncoder{info: info, started: make(chan int, 1024)}
	if blocking {
		g.gate = make(chan struct{}, 1024)
	}
	return g
}

// release lets n batches run.
func (g *gatedEncoder) release(n int) {
	for range n {
		g.gate <- struct{}{}
	}
}

func (g *gatedEncoder) Encode(ctx context.Context, mel []float32, batch int) ([]float32, error) {
	g.mu.Lock()
	g.batches = append(g.batches, batch)
	g.mu.Unlock()
	g.started <- batch
	if g.gate != nil {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return fakeOutput(g.info, mel, batch), nil
}

// fakeOutput is gatedEncoder's function of its input.
func fakeOutput(info Info, mel []float32, batch int) []float32 {
	frame := info.NMels * info.InputFrames
	size := info.Positions * info.DModel
	out := make([]float32, batch*size)
	for b := range batch {
		var sum float64
		for _, v := range mel[b*frame : (b+1)*frame] {
			sum += float64(v)
		}
		mean := float32(sum / float64(frame))
		for p := range info.Positions {
			for c := range info.DModel {
				out[b*size+p*info.DModel+c] = mean + float32(p) + float32(c)/1000
			}
		}
	}
	return out
}

func (g *gatedEncoder) batchSizes() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.batches...)
}

// fakeInfo is a small model shape for the timing tests.
func fakeInfo() Info {
	return Info{ModelKey: "fake", Backend: "cpu", NMels: 80, DModel: 8, Layers: 1, Heads: 1, FFNDim: 8,
		InputFrames: 3000, Positions: 1500, Precision: "bfloat16"}
}
