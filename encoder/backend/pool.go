package backend

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Pool is a fixed set of worker goroutines that run parallel loops. It is
// safe for concurrent use: loops submitted by different goroutines queue up
// and each worker runs one task at a time, so per-worker scratch indexed by
// the worker number is never shared by two running tasks.
type Pool struct {
	jobs    chan *job
	workers int
	once    sync.Once
}

type job struct {
	n    int
	next atomic.Int64
	f    func(worker, i int)
	wg   sync.WaitGroup
}

// NewPool starts n workers (GOMAXPROCS when n ≤ 0). Close stops them.
func NewPool(n int) *Pool {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	p := &Pool{jobs: make(chan *job, 64*n), workers: n}
	for w := range n {
		go p.work(w)
	}
	return p
}

// Workers is the number of workers.
func (p *Pool) Workers() int { return p.workers }

func (p *Pool) work(w int) {
	for j := range p.jobs {
		for {
			i := int(j.next.Add(1) - 1)
			if i >= j.n {
				break
			}
			j.f(w, i)
		}
		j.wg.Done()
	}
}

// For runs f(worker, i) for every i in [0, n) on the workers and returns when
// all have finished. worker is in [0, Workers()).
func (p *Pool) For(n int, f func(worker, i int)) {
	if n <= 0 {
		return
	}
	j := &job{n: n, f: f}
	k := min(n, p.workers)
	j.wg.Add(k)
	for range k {
		p.jobs <- j
	}
	j.wg.Wait()
}

// Close stops the workers once the queued loops have run.
func (p *Pool) Close() { p.once.Do(func() { close(p.jobs) }) }
