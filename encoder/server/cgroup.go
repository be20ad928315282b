package server

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"strconv"
	"strings"
)

// NonHeapAllowance covers the resident memory that is neither the packed
// weights nor the Go runtime's (which its soft limit counts): the binary's
// pages, the C-side thread stacks and the pages of files being read.
const NonHeapAllowance = 32 << 20

// MinHeapLimit is the least soft limit HeapLimit sets: below it the
// collector would run all the time for little gain.
const MinHeapLimit = 64 << 20

// HeapLimit is the Go runtime's soft memory limit for a server whose budgets
// bound its heap by heap (MemoryBound) when the process may hold limit bytes
// in all (a container's memory limit; 0: none) of which modelBytes lie
// outside the Go heap (the packed weights): the smaller of heap and
// limit − modelBytes − NonHeapAllowance, never below MinHeapLimit. So the
// garbage collector runs before the pod's limit would kill the process,
// rather than when the heap has doubled.
func HeapLimit(heap, limit, modelBytes int64) int64 {
	if limit <= 0 {
		return heap
	}
	return min(heap, max(limit-modelBytes-NonHeapAllowance, MinHeapLimit))
}

// ContainerMemoryLimit reads the memory limit of the cgroup this process
// runs in, from root (the host's "/": /proc/self/cgroup and the cgroup
// file systems under sys/fs/cgroup), as Kubernetes sets it from the
// container's resources.limits.memory: cgroup v2 memory.max, else cgroup
// v1 memory.limit_in_bytes. It returns 0 when no limit is set ("max", or
// v1's page-rounded 2⁶³−1) or no cgroup file system is mounted.
func ContainerMemoryLimit(root fs.FS) (int64, error) {
	b, err := fs.ReadFile(root, "proc/self/cgroup")
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("memory limit: %w", err)
	}
	var tries []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		dir := strings.TrimPrefix(path.Clean("/"+f[2]), "/")
		switch {
		case f[0] == "0" && f[1] == "": // cgroup v2
			tries = append(tries, path.Join("sys/fs/cgroup", dir, "memory.max"), "sys/fs/cgroup/memory.max")
		case hasController(f[1], "memory"): // cgroup v1
			tries = append(tries, path.Join("sys/fs/cgroup/memory", dir, "memory.limit_in_bytes"), "sys/fs/cgroup/memory/memory.limit_in_bytes")
		}
	}
	for _, name := range tries {
		v, err := fs.ReadFile(root, name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("memory limit: %w", err)
		}
		return parseMemoryLimit(name, string(v))
	}
	return 0, nil
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// parseMemoryLimit reads a cgroup limit file: bytes, or "max" for none.
func parseMemoryLimit(name, v string) (int64, error) {
	v = strings.TrimSpace(v)
	if v == "max" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("memory limit: %s holds %q, expected a byte count or \"max\"", name, v)
	}
	if n >= math.MaxInt64&^(1<<20-1) { // cgroup v1's "unlimited", rounded down to a page
		return 0, nil
	}
	return n, nil
}
