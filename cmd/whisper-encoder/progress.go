package main

import (
	"runtime"
	"sync"

	"github.com/xdna-whisper/xdna-whisper/encoder/stage"
)

// syncProgress serializes calls from the stager's concurrent workers.
func syncProgress(f func(stage.Progress)) func(stage.Progress) {
	var mu sync.Mutex
	return func(p stage.Progress) {
		mu.Lock()
		defer mu.Unlock()
		f(p)
	}
}

// numCPU is the number of CPUs the process may use.
func numCPU() int { return runtime.GOMAXPROCS(0) }
