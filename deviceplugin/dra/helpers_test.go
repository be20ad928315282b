package dra

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/dynamic-resource-allocation/resourceslice"
	"k8s.io/utils/ptr"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/discovery"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/fakehost"
)

const testNode = "node-a"

// capture is a Publisher that keeps what the driver published.
type capture struct {
	mu   sync.Mutex
	last *resourceslice.DriverResources
	n    int
}

func (c *capture) PublishResources(_ context.Context, r resourceslice.DriverResources) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = r.DeepCopy()
	c.n++
	return nil
}

// devices returns the devices of the last published slice.
func (c *capture) devices() []resourceapi.Device {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		return nil
	}
	return c.last.Pools[testNode].Slices[0].Devices
}

// newDriver makes a Driver over a fake host, with CDI and state in temporary
// directories.
func newDriver(t *testing.T, h *fakehost.Host, opts Options) *Driver {
	t.Helper()
	opts.NodeName = testNode
	opts.Scanner = discovery.Scanner{SysfsRoot: h.Sys, DevRoot: h.Dev, DeviceIDs: discovery.DefaultDeviceIDs}
	if opts.CDIDir == "" {
		opts.CDIDir = t.TempDir()
	}
	if opts.StateDir == "" {
		opts.StateDir = t.TempDir()
	}
	opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// scanOnce runs one discovery scan and hands it to the driver, as Run does.
func scanOnce(t *testing.T, d *Driver, pub Publisher) {
	t.Helper()
	obs, err := d.opts.Scanner.Scan()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Update(context.Background(), pub, discovery.NewTracker().Update(obs)); err != nil {
		t.Fatal(err)
	}
}

// slicesOf turns published DriverResources into the ResourceSlice objects the
// resourceslice controller creates for a node-local pool.
func slicesOf(r *resourceslice.DriverResources, driver string) []*resourceapi.ResourceSlice {
	var out []*resourceapi.ResourceSlice
	for pool, p := range r.Pools {
		for i, s := range p.Slices {
			out = append(out, &resourceapi.ResourceSlice{
				ObjectMeta: metav1.ObjectMeta{Name: pool + "-" + driver + "-" + string(rune('a'+i))},
				Spec: resourceapi.ResourceSliceSpec{
					Driver:   driver,
					Pool:     resourceapi.ResourcePool{Name: pool, Generation: 1, ResourceSliceCount: int64(len(p.Slices))},
					NodeName: ptr.To(testNode),
					Devices:  s.Devices,
				},
			})
		}
	}
	return out
}

// eventually polls cond every 10 ms until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
