package discovery_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/discovery"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/fakehost"
)

func scanner(h *fakehost.Host, ids map[uint16]discovery.Family) discovery.Scanner {
	return discovery.Scanner{SysfsRoot: h.Sys, DevRoot: h.Dev, DeviceIDs: ids}
}

func both() map[uint16]discovery.Family {
	return map[uint16]discovery.Family{0x1502: discovery.XDNA1, 0x17f0: discovery.XDNA2}
}

// summary renders an NPU list as "pci:family:healthy" words for comparison.
func summary(npus []discovery.NPU) string {
	var parts []string
	for _, n := range npus {
		h := "ok"
		if !n.Healthy {
			h = "bad"
		}
		parts = append(parts, n.PCIAddress+":"+string(n.Family)+":"+h)
	}
	return strings.Join(parts, " ")
}

func TestDiscovery(t *testing.T) {
	tests := []struct {
		name  string
		setup func(h *fakehost.Host)
		ids   map[uint16]discovery.Family
		want  string
	}{
		{"none", func(h *fakehost.Host) {}, discovery.DefaultDeviceIDs, ""},
		{"one xdna1", func(h *fakehost.Host) {
			h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0})
		}, discovery.DefaultDeviceIDs, "0000:c4:00.1:xdna1:ok"},
		{"sorted by PCI address", func(h *fakehost.Host) {
			h.Add(fakehost.NPU{PCI: "0000:c5:00.1", Accel: 0})
			h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 1})
		}, discovery.DefaultDeviceIDs, "0000:c4:00.1:xdna1:ok 0000:c5:00.1:xdna1:ok"},
		{"xdna2 not on the default allow-list", func(h *fakehost.Host) {
			h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0, Device: 0x17f0})
		}, discovery.DefaultDeviceIDs, ""},
		{"xdna2 when enabled", func(h *fakehost.Host) {
			h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0, Device: 0x17f0})
			h.Add(fakehost.NPU{PCI: "0000:c5:00.1", Accel: 1})
		}, both(), "0000:c4:00.1:xdna2:ok 0000:c5:00.1:xdna1:ok"},
		{"other vendor", func(h *fakehost.Host) {
			h.Add(fakehost.NPU{PCI: "0000:00:0b.0", Accel: 0, Vendor: 0x8086, Device: 0x7d1d, Driver: "intel_vpu"})
		}, discovery.DefaultDeviceIDs, ""},
		{"other AMD device", func(h *fakehost.Host) {
			h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0, Device: 0x1234})
		}, discovery.DefaultDeviceIDs, ""},
		{"wrong driver is never discovered", func(h *fakehost.Host) {
			h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0, Driver: "vfio-pci"})
		}, discovery.DefaultDeviceIDs, ""},
		{"missing node", func(h *fakehost.Host) {
			h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0})
			h.RemoveNode(0)
		}, discovery.DefaultDeviceIDs, "0000:c4:00.1:xdna1:bad"},
		{"regular file instead of a node", func(h *fakehost.Host) {
			h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0})
			h.ReplaceNodeWithFile(0)
		}, discovery.DefaultDeviceIDs, "0000:c4:00.1:xdna1:bad"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := fakehost.New(t)
			tc.setup(h)
			obs, err := scanner(h, tc.ids).Scan()
			if err != nil {
				t.Fatal(err)
			}
			if got := summary(discovery.NewTracker().Update(obs)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAttributes(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 3, NUMA: 1, Firmware: "1.5.2.380"})
	obs, err := scanner(h, discovery.DefaultDeviceIDs).Scan()
	if err != nil {
		t.Fatal(err)
	}
	npus := discovery.NewTracker().Update(obs)
	if len(npus) != 1 {
		t.Fatalf("got %d NPUs, want 1", len(npus))
	}
	want := discovery.NPU{
		PCIAddress: "0000:c4:00.1", AccelName: "accel3", DevicePath: "/dev/accel/accel3",
		DeviceID: 0x1502, Family: discovery.XDNA1, NUMANode: 1,
		Firmware: "1.5.2.380", VBNV: "RyzenAI-npu1", DeviceType: "1", Healthy: true,
	}
	if npus[0] != want {
		t.Errorf("got %+v\nwant %+v", npus[0], want)
	}
}

func TestNodeProblems(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0})
	s := scanner(h, discovery.DefaultDeviceIDs)
	tests := []struct {
		name    string
		path    string
		wantDev string
		want    string
	}{
		{"ok", h.NodePath(0), "261:0", ""},
		{"no dev attribute", h.NodePath(0), "", ""},
		{"wrong device number", h.NodePath(0), "261:7", "device number 261:0, want 261:7 (from sysfs)"},
		{"missing", s.NodePath("accel9"), "", "accel9: missing"},
		{"directory", h.Dev, "", "is a directory, want a character device"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := discovery.CheckNode(tc.path, tc.wantDev)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestNodeMode: a node whose owner cannot both read and write it is a problem
// that says so, whatever the group and other bits allow.
func TestNodeMode(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0})
	for _, tc := range []struct {
		mode os.FileMode
		want string // "" = usable
	}{
		{0o600, ""},
		{0o666, ""},
		{0o660, ""},
		{0o000, "mode 0000, want at least 0600 (owner read and write)"},
		{0o400, "mode 0400, want at least 0600"},
		{0o200, "mode 0200, want at least 0600"},
		{0o066, "mode 0066, want at least 0600"},
	} {
		h.Chmod(0, tc.mode)
		err := discovery.CheckNode(h.NodePath(0), "261:0")
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("mode %04o: unexpected error %v", tc.mode, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("mode %04o: error %v, want one containing %q", tc.mode, err, tc.want)
		}
	}
}

// TestTrackerLifecycle walks one NPU through the ways it can break and come back.
func TestTrackerLifecycle(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0})
	s := scanner(h, discovery.DefaultDeviceIDs)
	tr := discovery.NewTracker()
	steps := []struct {
		name    string
		change  func()
		healthy bool
		problem string
		node    string
	}{
		{"discovered", func() {}, true, "", "/dev/accel/accel0"},
		{"node removed", func() { h.RemoveNode(0) }, false, "accel0: missing", "/dev/accel/accel0"},
		{"node back", func() { h.Mknod(0) }, true, "", "/dev/accel/accel0"},
		{"regular file", func() { h.ReplaceNodeWithFile(0) }, false, "is a regular file", "/dev/accel/accel0"},
		{"node fixed", func() { h.RemoveNode(0); h.Mknod(0) }, true, "", "/dev/accel/accel0"},
		{"mode 000", func() { h.Chmod(0, 0) }, false, "mode 0000, want at least 0600", "/dev/accel/accel0"},
		{"mode 0600 again", func() { h.Chmod(0, 0o600) }, true, "", "/dev/accel/accel0"},
		{"driver switched", func() { h.Bind("0000:c4:00.1", "vfio-pci") }, false, "driver vfio-pci bound, want amdxdna", "/dev/accel/accel0"},
		{"driver rebound", func() { h.Bind("0000:c4:00.1", "amdxdna") }, true, "", "/dev/accel/accel0"},
		{"unbound", func() { h.Bind("0000:c4:00.1", ""); h.RemoveAccel("0000:c4:00.1", 0) }, false, "no driver bound", "/dev/accel/accel0"},
		{"rebound as accel1", func() { h.Bind("0000:c4:00.1", "amdxdna"); h.AddAccel("0000:c4:00.1", 1) }, true, "", "/dev/accel/accel1"},
		{"hot-unplugged", func() { h.RemovePCI("0000:c4:00.1", 1) }, false, "is gone from sysfs", "/dev/accel/accel1"},
		{"plugged back", func() { h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0}) }, true, "", "/dev/accel/accel0"},
	}
	for _, st := range steps {
		st.change()
		obs, err := s.Scan()
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		npus := tr.Update(obs)
		if len(npus) != 1 {
			t.Fatalf("%s: got %d NPUs, want 1 (a known NPU stays listed)", st.name, len(npus))
		}
		n := npus[0]
		if n.Healthy != st.healthy || !strings.Contains(n.Problem, st.problem) || (st.problem == "" && n.Problem != "") || n.DevicePath != st.node {
			t.Errorf("%s: got healthy=%v problem=%q node=%s, want healthy=%v problem containing %q node=%s",
				st.name, n.Healthy, n.Problem, n.DevicePath, st.healthy, st.problem, st.node)
		}
	}
}

// recorder collects what a Monitor publishes.
type recorder struct {
	mu   sync.Mutex
	got  []string
	wake chan struct{}
}

func (r *recorder) publish(npus []discovery.NPU) {
	r.mu.Lock()
	r.got = append(r.got, summary(npus))
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// waitFor waits until the last published list is want.
func (r *recorder) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		r.mu.Lock()
		last := "<nothing>"
		if len(r.got) > 0 {
			last = r.got[len(r.got)-1]
		}
		r.mu.Unlock()
		if last == want {
			return
		}
		select {
		case <-r.wake:
		case <-deadline:
			t.Fatalf("last published %q, want %q", last, want)
		}
	}
}

// TestMonitorHotplug checks that filesystem events alone (the period is an hour)
// drive hot add, removal and recovery.
func TestMonitorHotplug(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0})
	m := &discovery.Monitor{Scanner: scanner(h, discovery.DefaultDeviceIDs), Interval: time.Hour}
	r := &recorder{wake: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx, r.publish) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	r.waitFor(t, "0000:c4:00.1:xdna1:ok")
	h.Add(fakehost.NPU{PCI: "0000:c5:00.1", Accel: 1})
	r.waitFor(t, "0000:c4:00.1:xdna1:ok 0000:c5:00.1:xdna1:ok")
	h.RemoveNode(0)
	r.waitFor(t, "0000:c4:00.1:xdna1:bad 0000:c5:00.1:xdna1:ok")
	h.Mknod(0)
	r.waitFor(t, "0000:c4:00.1:xdna1:ok 0000:c5:00.1:xdna1:ok")
	h.Chmod(0, 0)
	r.waitFor(t, "0000:c4:00.1:xdna1:bad 0000:c5:00.1:xdna1:ok")
	h.Chmod(0, 0o600)
	r.waitFor(t, "0000:c4:00.1:xdna1:ok 0000:c5:00.1:xdna1:ok")
	h.Bind("0000:c5:00.1", "")
	r.waitFor(t, "0000:c4:00.1:xdna1:ok 0000:c5:00.1:xdna1:bad")
	h.Bind("0000:c5:00.1", "amdxdna")
	r.waitFor(t, "0000:c4:00.1:xdna1:ok 0000:c5:00.1:xdna1:ok")
	h.RemovePCI("0000:c5:00.1", 1)
	r.waitFor(t, "0000:c4:00.1:xdna1:ok 0000:c5:00.1:xdna1:bad")
	h.Add(fakehost.NPU{PCI: "0000:c5:00.1", Accel: 1})
	r.waitFor(t, "0000:c4:00.1:xdna1:ok 0000:c5:00.1:xdna1:ok")
}

// TestMonitorPeriod checks that the period alone catches a change that sends no
// event to any watched directory (as every change on a real sysfs does): the
// accel entry's `dev` attribute starts to disagree with the node's device number.
func TestMonitorPeriod(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0})
	m := &discovery.Monitor{Scanner: scanner(h, discovery.DefaultDeviceIDs), Interval: 20 * time.Millisecond}
	r := &recorder{wake: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = m.Run(ctx, r.publish) }()
	r.waitFor(t, "0000:c4:00.1:xdna1:ok")
	dev := filepath.Join(h.PCIDir("0000:c4:00.1"), "accel", "accel0", "dev")
	if err := os.WriteFile(dev, []byte("261:5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "0000:c4:00.1:xdna1:bad")
}

func TestOfFamily(t *testing.T) {
	npus := []discovery.NPU{
		{PCIAddress: "0000:c4:00.1", Family: discovery.XDNA1},
		{PCIAddress: "0000:c5:00.1", Family: discovery.XDNA2},
		{PCIAddress: "0000:c6:00.1", Family: discovery.XDNA1},
	}
	if got := summary(discovery.OfFamily(npus, discovery.XDNA1)); got != "0000:c4:00.1:xdna1:bad 0000:c6:00.1:xdna1:bad" {
		t.Errorf("xdna1: %s", got)
	}
	if got := summary(discovery.OfFamily(npus, discovery.XDNA2)); got != "0000:c5:00.1:xdna2:bad" {
		t.Errorf("xdna2: %s", got)
	}
	if got := discovery.OfFamily(npus, "xdna9"); len(got) != 0 {
		t.Errorf("unknown family: %v", got)
	}
}

func TestMonitorNeedsInterval(t *testing.T) {
	m := &discovery.Monitor{Scanner: discovery.Scanner{SysfsRoot: t.TempDir(), DevRoot: t.TempDir()}}
	err := m.Run(context.Background(), func([]discovery.NPU) {})
	if err == nil || !strings.Contains(err.Error(), "rescan interval 0s: want a positive period") {
		t.Errorf("Run with no interval: %v", err)
	}
}
