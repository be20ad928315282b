package backend

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// spinWindow is how long an idle helper keeps polling for its next task,
// and a loop's caller for its helpers' completion, before parking on a
// channel. A decode step is ~61 short loops with a few microseconds of
// serial work between them; a parked helper costs a futex wake-up and a
// trip through the scheduler per loop. Measured with BenchmarkStep on the
// whisper-base-shaped decoder, batch 1, GOMAXPROCS=2, AMD EPYC Zen 4 (2
// cores), alternating runs in one session:
//   - nearly quiet (load ≈ 2, ours): 9.2 ms/step with the channel hand-off
//     before this pool, 6.8 ms with it at 50 µs (medians of 6);
//   - shared (load 2.3-3.1), window 0 / 10 / 50 / 200 / 1000 µs: fastest
//     runs 8.4 / 7.0 / 6.9 / 7.0 / 6.4 ms, medians 12.3 / 13.7 / 14.4 /
//     15.0 / 17.7 ms (of 8): past 50 µs spinning gains nothing on a quiet
//     machine and costs more on a busy one, where shorter windows win.
//
// After the window an idle pool burns no CPU.
const spinWindow = 50 * time.Microsecond

// Pool runs parallel loops on a fixed number of workers. Each worker number
// is a token: a loop's caller takes one and runs tasks itself, and hands any
// other free tokens to the helper goroutines that own them, so per-worker
// scratch indexed by the worker number is never shared by two running
// tasks, and a one-worker pool runs every loop on the caller's goroutine.
// It is safe for concurrent use: loops submitted by different goroutines
// share the tokens.
//
// Hand-offs are low-latency: a helper polls for its next task for
// spinWindow after finishing one, and a caller polls for its helpers'
// completion as long, before either parks.
type Pool struct {
	workers int
	helpers []helper // one per worker number (none in a one-worker pool)
	jobs    []job    // jobs[w]: the loop of the caller holding token w

	mu      sync.Mutex
	free    []int // free worker numbers, a stack
	waiting int   // callers waiting for a free worker number
	freed   *sync.Cond
	once    sync.Once
}

// Parking states of helpers (their slot) and callers (their job).
const (
	awake int32 = iota
	parked
	finished // jobs only: every helper is done
)

// helper is the goroutine owning one worker number: it runs the loops
// handed to it with that number while a caller holds the token for it.
type helper struct {
	slot  atomic.Pointer[job]
	state atomic.Int32 // awake or parked
	wake  chan struct{}
	_     [40]byte // keep neighbouring helpers' polled words apart
}

// job is one loop: its tasks, the next unclaimed index and the helpers
// still running it.
type job struct {
	n       int
	next    atomic.Int64
	f       func(worker, i int)
	pending atomic.Int32 // helpers not done yet
	state   atomic.Int32 // awake, parked (the caller sleeps on done) or finished
	done    chan struct{}
}

// stop is handed to the helpers by Close.
var stop = new(job)

// NewPool makes a pool of n workers (GOMAXPROCS when n ≤ 0). Close stops
// its helper goroutines.
func NewPool(n int) *Pool {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	p := &Pool{workers: n, jobs: make([]job, n), free: make([]int, n)}
	p.freed = sync.NewCond(&p.mu)
	for w := range n {
		p.free[w] = n - 1 - w // worker 0 on top
		p.jobs[w].done = make(chan struct{}, 1)
	}
	if n > 1 {
		p.helpers = make([]helper, n)
		for w := range p.helpers {
			p.helpers[w].wake = make(chan struct{}, 1)
			go p.help(w)
		}
	}
	return p
}

// Workers is the number of workers.
func (p *Pool) Workers() int { return p.workers }

// For runs f(worker, i) for every i in [0, n) and returns when all have
// finished. worker is in [0, Workers()); the caller runs as one of them.
func (p *Pool) For(n int, f func(worker, i int)) {
	if n <= 0 {
		return
	}
	var ids [8]int
	id, extra := p.take(min(n, p.workers)-1, ids[:0])
	j := &p.jobs[id]
	j.n, j.f = n, f
	j.next.Store(0)
	j.state.Store(awake)
	j.pending.Store(int32(len(extra)))
	for _, h := range extra {
		p.helpers[h].give(j)
	}
	j.run(id)
	if len(extra) > 0 {
		j.collect(p, extra)
	}
	j.f = nil
	p.release(id)
}

// collect returns when every helper handed j is done with it. A helper that
// has not picked j up yet (parked, or its thread descheduled) is not waited
// for: j is taken back from its slot and its worker number released.
func (j *job) collect(p *Pool, extra []int) {
	var back int32
	for _, h := range extra {
		if p.helpers[h].slot.CompareAndSwap(j, nil) {
			back++
			p.release(h)
		}
	}
	if back > 0 && j.pending.Add(-back) == 0 {
		return // every helper was taken back or done before the last take-back
	}
	j.wait()
}

// take blocks until a worker number is free and takes it for the caller,
// with up to more others that are free at once (appended to buf).
func (p *Pool) take(more int, buf []int) (int, []int) {
	p.mu.Lock()
	for len(p.free) == 0 {
		p.waiting++
		p.freed.Wait()
		p.waiting--
	}
	top := len(p.free) - 1
	id := p.free[top]
	k := max(top-more, 0)
	buf = append(buf, p.free[k:top]...)
	p.free = p.free[:k]
	p.mu.Unlock()
	return id, buf
}

// release returns worker number w.
func (p *Pool) release(w int) {
	p.mu.Lock()
	p.free = append(p.free, w)
	if p.waiting > 0 {
		p.freed.Signal()
	}
	p.mu.Unlock()
}

func (j *job) run(worker int) {
	for {
		i := int(j.next.Add(1) - 1)
		if i >= j.n {
			return
		}
		j.f(worker, i)
	}
}

// wait returns when every helper of j is done: it polls for spinWindow,
// then parks until the last helper wakes it.
func (j *job) wait() {
	if spin(func() bool { return j.state.Load() == finished }) {
		return
	}
	if j.state.CompareAndSwap(awake, parked) {
		<-j.done
	}
}

// finish marks one helper of j done; the last one wakes a parked caller.
// After it the helper does not touch j: its caller may reuse it at once.
func (j *job) finish() {
	if j.pending.Add(-1) == 0 && j.state.Swap(finished) == parked {
		j.done <- struct{}{}
	}
}

// give hands j to the helper (its caller holds the helper's token).
func (h *helper) give(j *job) {
	h.slot.Store(j)
	if h.state.Swap(awake) == parked {
		h.wake <- struct{}{}
	}
}

// next returns the helper's next job: it polls its slot for spinWindow,
// then parks until give wakes it.
func (h *helper) next() *job {
	for {
		if j := h.slot.Swap(nil); j != nil {
			return j
		}
		if spin(func() bool { return h.slot.Load() != nil }) {
			continue
		}
		h.state.Store(parked)
		if h.slot.Load() != nil && h.state.CompareAndSwap(parked, awake) {
			continue // a job came before we slept and give saw us awake
		}
		<-h.wake // give swapped the state and sends (or has sent) once
	}
}

// help is the goroutine of worker number w.
func (p *Pool) help(w int) {
	h := &p.helpers[w]
	for {
		j := h.next()
		if j == stop {
			return
		}
		j.run(w)
		p.release(w) // before finish: the caller's next loop finds w free
		j.finish()
	}
}

// spin polls done for up to spinWindow, yielding the processor between
// polls, and reports whether it became true.
func spin(done func() bool) bool {
	var start time.Time
	for i := 0; ; i++ {
		if done() {
			return true
		}
		if i&15 == 15 {
			if start.IsZero() {
				start = time.Now()
			} else if time.Since(start) > spinWindow {
				return false
			}
			runtime.Gosched()
		}
	}
}

// Close stops the helper goroutines; the pool must not be used afterwards.
func (p *Pool) Close() {
	p.once.Do(func() {
		for w := range p.helpers {
			p.helpers[w].give(stop)
		}
	})
}
