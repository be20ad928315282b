package server

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestContainerMemoryLimit(t *testing.T) {
	v1 := "9:name=systemd:/\n4:memory:/kubepods/pod1/c1\n0::/\n"
	for _, c := range []struct {
		name  string
		files fstest.MapFS
		want  int64
		err   string
	}{
		{"no /proc", fstest.MapFS{}, 0, ""},
		{"v2 in its cgroup", fstest.MapFS{
			"proc/self/cgroup":                          {Data: []byte("0::/kubepods/pod1/c1\n")},
			"sys/fs/cgroup/kubepods/pod1/c1/memory.max": {Data: []byte("314572800\n")},
		}, 300 << 20, ""},
		{"v2 namespaced at the root", fstest.MapFS{
			"proc/self/cgroup":         {Data: []byte("0::/\n")},
			"sys/fs/cgroup/memory.max": {Data: []byte("1073741824\n")},
		}, 1 << 30, ""},
		{"v2 unlimited", fstest.MapFS{
			"proc/self/cgroup":         {Data: []byte("0::/\n")},
			"sys/fs/cgroup/memory.max": {Data: []byte("max\n")},
		}, 0, ""},
		{"v1 in its cgroup", fstest.MapFS{
			"proc/self/cgroup": {Data: []byte(v1)},
			"sys/fs/cgroup/memory/kubepods/pod1/c1/memory.limit_in_bytes": {Data: []byte("536870912\n")},
		}, 512 << 20, ""},
		{"v1 namespaced, unlimited", fstest.MapFS{
			"proc/self/cgroup":                           {Data: []byte(v1)},
			"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte("9223372036854771712\n")},
		}, 0, ""},
		{"v1 with joined controllers", fstest.MapFS{
			"proc/self/cgroup": {Data: []byte("3:cpu,memory:/x\n")},
			"sys/fs/cgroup/memory/x/memory.limit_in_bytes": {Data: []byte("1000000\n")},
		}, 1000000, ""},
		{"no cgroup file system", fstest.MapFS{"proc/self/cgroup": {Data: []byte(v1)}}, 0, ""},
		{"garbage", fstest.MapFS{
			"proc/self/cgroup":         {Data: []byte("0::/\n")},
			"sys/fs/cgroup/memory.max": {Data: []byte("lots\n")},
		}, 0, `sys/fs/cgroup/memory.max holds "lots", expected a byte count or "max"`},
	} {
		got, err := ContainerMemoryLimit(c.files)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: error %v", c.name, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.err)
		case got != c.want:
			t.Errorf("%s: limit %d, want %d", c.name, got, c.want)
		}
	}
}

func TestHeapLimit(t *testing.T) {
	const heap, model = 2 << 30, 140 << 20
	for _, c := range []struct {
		limit, want int64
	}{
		{0, heap}, // no container limit: the budgets' bound
		{300 << 20, 300<<20 - model - NonHeapAllowance}, // what the packed weights leave
		{4 << 30, heap},           // a roomy pod: the budgets' bound is lower
		{150 << 20, MinHeapLimit}, // a pod too small for the model: the floor
	} {
		if got := HeapLimit(heap, c.limit, model); got != c.want {
			t.Errorf("HeapLimit(%d, %d, %d) = %d, want %d", int64(heap), c.limit, int64(model), got, c.want)
		}
	}
}
