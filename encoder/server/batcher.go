package server

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
)

// job is one window waiting to be encoded.
type job struct {
	ctx      context.Context
	mel      []float32 // [NMels, Frames]
	enqueued time.Time
	err      error       // set by submit for a window the encoder cannot take
	done     chan result // buffered (1): the batcher never blocks on a reply
}

// result is a job's outcome.
type result struct {
	out       []float32 // [Positions, DModel]
	queueWait time.Duration
	compute   time.Duration
	batch     int
	err       error
}

// batcher owns the bounded queue and the one goroutine that feeds the encoder.
//
// Admission is by reservation: a request reserves one slot per window before
// doing any work (reserve fails at once when the queue is full), and a slot is
// released when the batcher takes its window off the queue. So the channel's
// capacity is never exceeded and submit never blocks.
type batcher struct {
	enc      BatchEncoder
	info     Info
	maxBatch int
	window   time.Duration
	capacity int64
	metrics  *metrics

	reserved atomic.Int64 // windows admitted and not yet taken into a batch
	queue    chan *job
	stop     chan struct{}
	stopped  chan struct{}
	once     sync.Once
}

// newBatcher starts the batching goroutine.
func newBatcher(enc BatchEncoder, info Info, opts Options, m *metrics) *batcher {
	b := &batcher{
		enc:      enc,
		info:     info,
		maxBatch: opts.MaxBatch,
		window:   opts.BatchWindow,
		capacity: int64(opts.MaxQueue),
		metrics:  m,
		queue:    make(chan *job, opts.MaxQueue),
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	go b.run()
	return b
}

// reserve admits n windows if the queue has room for all of them.
func (b *batcher) reserve(n int) bool {
	for {
		cur := b.reserved.Load()
		if cur+int64(n) > b.capacity {
			return false
		}
		if b.reserved.CompareAndSwap(cur, cur+int64(n)) {
			b.metrics.queueDepth.Set(float64(cur + int64(n)))
			return true
		}
	}
}

// release returns n reserved slots (a window taken into a batch, or one that a
// request reserved and never submitted).
func (b *batcher) release(n int) {
	b.metrics.queueDepth.Set(float64(b.reserved.Add(-int64(n))))
}

// full reports whether no window can be admitted now.
func (b *batcher) full() bool { return b.reserved.Load() >= b.capacity }

// depth is the number of windows admitted and waiting.
func (b *batcher) depth() int { return int(b.reserved.Load()) }

// submit queues one reserved window; the result arrives on the returned
// channel. A window holding NaN or ±Inf is checked here, in the caller's
// goroutine, and answered with its error when the batcher reaches it.
func (b *batcher) submit(ctx context.Context, mel []float32) <-chan result {
	j := &job{ctx: ctx, mel: mel, enqueued: time.Now(), done: make(chan result, 1)}
	if i := firstNonFinite(mel); i >= 0 {
		j.err = errorf(codes.InvalidArgument, "log-mel value %v at [%d, %d]: want finite values", mel[i], i/b.info.InputFrames, i%b.info.InputFrames)
	}
	b.queue <- j
	return j.done
}

// close finishes every queued window, then stops the goroutine.
func (b *batcher) close() {
	b.once.Do(func() { close(b.stop) })
	<-b.stopped
}

// run takes batches off the queue until close, then drains what is left.
func (b *batcher) run() {
	defer close(b.stopped)
	for {
		select {
		case j := <-b.queue:
			b.runBatch(b.collect(j))
		case <-b.stop:
			for {
				select {
				case j := <-b.queue:
					b.runBatch(b.collect(j))
				default:
					return
				}
			}
		}
	}
}

// collect starts a batch with first and adds queued windows until the batch
// is full or the batch window has passed since first was taken; windows
// already queued when it passes still join. Windows whose request has gone
// away are answered and dropped here, before any compute.
func (b *batcher) collect(first *job) []*job {
	batch := b.admit(nil, first)
	if b.window > 0 {
		timer := time.NewTimer(b.window)
		defer timer.Stop()
	wait:
		for len(batch) < b.maxBatch {
			select {
			case j := <-b.queue:
				batch = b.admit(batch, j)
			case <-timer.C:
				break wait
			}
		}
	}
	for len(batch) < b.maxBatch {
		select {
		case j := <-b.queue:
			batch = b.admit(batch, j)
		default:
			return batch
		}
	}
	return batch
}

// admit releases j's queue slot and appends it to batch unless its request
// is already cancelled or past its deadline, or its log-mel holds a value the
// encoder cannot take (answered alone, so it fails no other window).
func (b *batcher) admit(batch []*job, j *job) []*job {
	b.release(1)
	if err := j.ctx.Err(); err != nil {
		b.metrics.windowsDropped.Inc()
		j.done <- result{err: err, queueWait: time.Since(j.enqueued)}
		return batch
	}
	if j.err != nil {
		j.done <- result{err: j.err, queueWait: time.Since(j.enqueued)}
		return batch
	}
	return append(batch, j)
}

// runBatch encodes the live jobs of batch as one encoder call and answers
// each with its own result.
func (b *batcher) runBatch(batch []*job) {
	if len(batch) == 0 {
		return
	}
	start := time.Now()
	for _, j := range batch {
		b.metrics.queueWait.Observe(start.Sub(j.enqueued).Seconds())
	}
	b.compute(batch, start)
}

// compute runs batch on the encoder. Errors are per window: when a batch of
// several fails for a reason other than every request going away, each of
// its windows is run alone, so a window that makes the encoder fail fails
// only its own request.
func (b *batcher) compute(batch []*job, queued time.Time) {
	ctx, cancel := b.batchContext(batch)
	defer cancel()
	start := time.Now()
	outs, err := b.encode(ctx, batch)
	elapsed := time.Since(start)
	b.metrics.observeBatch(len(batch), elapsed)
	if err != nil && len(batch) > 1 && ctx.Err() == nil {
		for _, j := range batch {
			b.compute([]*job{j}, queued)
		}
		return
	}
	for i, j := range batch {
		r := result{queueWait: queued.Sub(j.enqueued), compute: elapsed, batch: len(batch), err: err}
		if err == nil {
			r.out = outs[i]
			if k := firstNonFinite(r.out); k >= 0 {
				r.out, r.err = nil, fmt.Errorf("encoder output value %v at position %d, channel %d: not finite", r.out[k], k/b.info.DModel, k%b.info.DModel)
			}
		}
		j.done <- r
	}
}

// encode runs batch on the encoder and returns each window's own output:
// written there by a WindowsEncoder, else cut from one batch output.
func (b *batcher) encode(ctx context.Context, batch []*job) ([][]float32, error) {
	frame, size := b.info.NMels*b.info.InputFrames, b.info.Positions*b.info.DModel
	outs := make([][]float32, len(batch))
	if we, ok := b.enc.(WindowsEncoder); ok {
		mels := make([][]float32, len(batch))
		for i, j := range batch {
			mels[i] = j.mel
			if len(j.mel) != frame { // a short window: padded with zeros, as stacked below
				mels[i] = make([]float32, frame)
				copy(mels[i], j.mel)
			}
			outs[i] = make([]float32, size)
		}
		return outs, we.EncodeWindows(ctx, mels, outs)
	}
	in := make([]float32, len(batch)*frame)
	for i, j := range batch {
		copy(in[i*frame:], j.mel)
	}
	out, err := b.enc.Encode(ctx, in, len(batch))
	if err != nil {
		return nil, err
	}
	if len(out) != len(batch)*size {
		return nil, errBackendShape(len(out), len(batch), b.info)
	}
	for i := range batch {
		outs[i] = out[i*size : (i+1)*size : (i+1)*size]
		if len(batch) > 1 {
			// Its own copy: a request that keeps its window must not keep
			// the whole batch's output alive (the decode budget counts
			// each request's windows, not its batchmates').
			outs[i] = append([]float32(nil), outs[i]...)
		}
	}
	return outs, nil
}

// firstNonFinite is the index of the first NaN or ±Inf in v, or -1.
func firstNonFinite(v []float32) int {
	for i, x := range v {
		if x-x != 0 { // NaN - NaN and Inf - Inf are NaN
			return i
		}
	}
	return -1
}

// batchContext is cancelled once every request in the batch has gone away,
// so the backend can stop computing for nobody.
func (b *batcher) batchContext(batch []*job) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	live := atomic.Int64{}
	live.Store(int64(len(batch)))
	stops := make([]func() bool, len(batch))
	for i, j := range batch {
		stops[i] = context.AfterFunc(j.ctx, func() {
			if live.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}
