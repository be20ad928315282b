package dra

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/amdxdna"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/fakehost"
)

func names(devs []resourceapi.Device) []string {
	var out []string
	for _, d := range devs {
		out = append(out, d.Name)
	}
	return out
}

// Run republishes when an NPU's node disappears (taken out of the slice) and
// comes back, and the health stream follows.
func TestRunRepublishesOnDeviceChanges(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0, Firmware: "1.5.2.380"})
	h.Add(fakehost.NPU{PCI: "0000:c5:00.1", Accel: 1, Firmware: "1.5.2.380"})
	d := newDriver(t, h, Options{Unhealthy: UnhealthyRemove})
	pub := &capture{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, pub, time.Hour) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	reports := make(chan kubeletplugin.DeviceHealthReport)
	go func() { _ = d.WatchHealthStatus(ctx, reports) }()
	health := func(dev string) kubeletplugin.HealthStatus {
		for {
			r := <-reports
			for _, h := range r.Devices {
				if h.DeviceName == dev {
					return h.Health
				}
			}
		}
	}
	both := func() bool { return len(pub.devices()) == 2 }
	eventually(t, "both NPUs published", both)

	h.RemoveNode(1) // devtmpfs sends an inotify event: no wait for the period
	eventually(t, "the NPU without a node leaves the slice", func() bool {
		n := names(pub.devices())
		return len(n) == 1 && n[0] == "npu-0000-c4-00-1"
	})
	eventually(t, "health reports it unhealthy", func() bool {
		return health("npu-0000-c5-00-1") == kubeletplugin.HealthStatusUnhealthy
	})

	h.Mknod(1)
	eventually(t, "the NPU is back in the slice", both)
	eventually(t, "health reports it healthy", func() bool {
		return health("npu-0000-c5-00-1") == kubeletplugin.HealthStatusHealthy
	})
}

// Under UnhealthyTaint an unhealthy NPU stays in the slice with a NoSchedule
// taint, and the allocator does not pick it.
func TestUnhealthyTaint(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0, Firmware: "1.5.2.380"})
	d := newDriver(t, h, Options{Unhealthy: UnhealthyTaint})
	pub := &capture{}
	scanOnce(t, d, pub)
	if len(pub.devices()) != 1 || len(pub.devices()[0].Taints) != 0 {
		t.Fatalf("healthy NPU published as %+v", pub.devices())
	}
	h.RemoveNode(0)
	scanOnce(t, d, pub)
	devs := pub.devices()
	if len(devs) != 1 || len(devs[0].Taints) != 1 || devs[0].Taints[0].Key != "npu.amd.com/unhealthy" ||
		devs[0].Taints[0].Effect != resourceapi.DeviceTaintEffectNoSchedule {
		t.Fatalf("unhealthy NPU published as %+v, want one NoSchedule taint", devs)
	}
	c := newCluster(t, slicesOf(pub.last, DefaultDriverName))
	if res := c.allocate(claimFor("x", 1, "")); res != nil {
		t.Fatal("a tainted NPU was allocated")
	}
}

// The NPU is asked once while healthy, not on every rescan, and again after it
// was unhealthy (a driver reload may have brought new firmware).
func TestInventoryAskedRarely(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0, Firmware: "1.5.2.380"})
	opens := 0
	inv := &amdxdna.Inventory{Open: func(p string) (amdxdna.Querier, error) {
		opens++
		return nil, &amdxdna.QueryError{Path: p, Op: "open", Errno: unix.EPERM, Err: unix.EPERM}
	}}
	d := newDriver(t, h, Options{Inventory: inv})
	pub := &capture{}
	for i := 0; i < 3; i++ {
		scanOnce(t, d, pub)
	}
	if opens != 1 {
		t.Fatalf("%d opens over 3 scans of a healthy NPU, want 1", opens)
	}
	h.RemoveNode(0)
	scanOnce(t, d, pub)
	if opens != 1 {
		t.Fatalf("an unhealthy NPU was queried (%d opens)", opens)
	}
	h.Mknod(0)
	scanOnce(t, d, pub)
	if opens != 2 {
		t.Fatalf("%d opens after the NPU came back, want 2", opens)
	}
	if fw := pub.devices()[0].Attributes[AttrFirmware].StringValue; fw == nil || *fw != "1.5.2.380" {
		t.Errorf("firmware attribute %v after EPERM, want sysfs's 1.5.2.380", fw)
	}
}

// Run hands the unchanged slice to the publisher again every interval: a starting
// kubelet deletes the node's slices, and only a new PublishResources makes the
// ResourceSlice controller recreate them at once (it waits 30 s after a delete
// event otherwise).
func TestRunRepublishesUnchangedSlice(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0, Firmware: "1.5.2.380"})
	d := newDriver(t, h, Options{})
	pub := &capture{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, pub, 10*time.Millisecond) }()
	eventually(t, "the slice published 3 times with no change", func() bool {
		pub.mu.Lock()
		defer pub.mu.Unlock()
		return pub.n >= 3
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := names(pub.devices()); len(n) != 1 || n[0] != "npu-0000-c4-00-1" {
		t.Errorf("republished devices %q, want the one NPU", n)
	}
	if err := d.Run(context.Background(), pub, 0); err == nil {
		t.Error("Run with a zero interval: no error")
	}
}
