package kubelet

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/kubernetes/pkg/kubelet/cm/devicemanager"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/fakehost"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/plugin"
)

const npuRes = "amd.com/npu"

// Functional timeouts: generous, so that a loaded CI machine does not fail them;
// the figures the tests print are what says how fast things are.
const (
	settleTimeout  = 10 * time.Second
	restartTimeout = 2 * time.Second // the bound for re-registration
	healthTimeout  = time.Second     // the bound for health propagation
)

// repetitions of the timed scenarios (the issue asks for at least 20).
const repetitions = 25

func twoNPUs() []fakehost.NPU {
	return []fakehost.NPU{
		{PCI: "0000:c4:00.1", Accel: 0, NUMA: 0, Firmware: "1.5.2.380"},
		{PCI: "0000:c5:00.1", Accel: 1, NUMA: 0, Firmware: "1.5.2.380"},
	}
}

// TestRegisterShowsCapacity: the plugin registers and the manager's capacity and
// allocatable show both NPUs; an XDNA2 NPU stays invisible until enabled, and
// then shows up as its own resource.
func TestRegisterShowsCapacity(t *testing.T) {
	dir := socketDir(t)
	k := startKubelet(t, dir)
	defer k.stop()
	npus := append(twoNPUs(), fakehost.NPU{PCI: "0000:c6:00.1", Accel: 2, Device: 0x17f0})
	startNode(t, dir, nodeConfig{npus: npus})
	k.waitCounts(npuRes, 2, 2, settleTimeout)
	if c, _ := k.counts("amd.com/npu-xdna2"); c != 0 {
		t.Errorf("XDNA2 advertised without being enabled: capacity %d", c)
	}

	dir2 := socketDir(t)
	k2 := startKubelet(t, dir2)
	defer k2.stop()
	startNode(t, dir2, nodeConfig{npus: npus, xdna2: true})
	k2.waitCounts(npuRes, 2, 2, settleTimeout)
	k2.waitCounts("amd.com/npu-xdna2", 1, 1, settleTimeout)
}

// TestAllocateThroughManager: the manager's Allocate reaches the plugin and the
// container's run options carry the device node, the env and the CDI name. The
// allocation latency is the manager's whole Allocate (device choice, the plugin's
// Allocate RPC, checkpoint write).
func TestAllocateThroughManager(t *testing.T) {
	dir := socketDir(t)
	k := startKubelet(t, dir)
	defer k.stop()
	startNode(t, dir, nodeConfig{npus: twoNPUs(), cdi: true})
	k.waitCounts(npuRes, 2, 2, settleTimeout)

	opts, _, err := k.allocate("both", npuRes, 2)
	if err != nil {
		t.Fatal(err)
	}
	checkOptions(t, opts,
		[]string{"/dev/accel/accel0", "/dev/accel/accel1"},
		map[string]string{
			plugin.EnvDevices:      "/dev/accel/accel0,/dev/accel/accel1",
			plugin.EnvPCIAddresses: "0000:c4:00.1,0000:c5:00.1",
		},
		[]string{"amd.com/npu=0000:c4:00.1", "amd.com/npu=0000:c5:00.1"})

	// A third NPU is not there: the manager refuses before reaching the plugin.
	if _, _, err := k.allocate("too-many", npuRes, 3); err == nil || !strings.Contains(err.Error(), "Requested: 3, Available: 0") {
		t.Errorf("allocating 3 of 2 NPUs (2 in use): error %v", err)
	}

	var took []time.Duration
	for i := range 50 {
		k.setPods() // release the previous pods' NPUs
		opts, d, err := k.allocate(fmt.Sprintf("pod-%d", i), npuRes, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(opts.Devices) != 1 || len(opts.CDIDevices) != 1 {
			t.Fatalf("pod-%d: %d devices, %d CDI devices, want 1 and 1", i, len(opts.Devices), len(opts.CDIDevices))
		}
		took = append(took, d)
	}
	t.Logf("FIGURE allocate latency (manager.Allocate, 1 NPU, via the plugin's Allocate RPC): %s", stats(took))
}

// checkOptions compares a container's run options with the expected device
// nodes (host path = container path, rw), env and CDI names.
func checkOptions(t *testing.T, opts *devicemanager.DeviceRunContainerOptions, devs []string, env map[string]string, cdi []string) {
	t.Helper()
	var gotDevs []string
	for _, d := range opts.Devices {
		if d.PathOnHost != d.PathInContainer || d.Permissions != "rw" {
			t.Errorf("device %+v: want the same path inside and rw", d)
		}
		gotDevs = append(gotDevs, d.PathOnHost)
	}
	sort.Strings(gotDevs)
	if !reflect.DeepEqual(gotDevs, devs) {
		t.Errorf("devices %q, want %q", gotDevs, devs)
	}
	gotEnv := map[string]string{}
	for _, e := range opts.Envs {
		gotEnv[e.Name] = e.Value
	}
	if !reflect.DeepEqual(gotEnv, env) {
		t.Errorf("env %v, want %v", gotEnv, env)
	}
	var gotCDI []string
	for _, d := range opts.CDIDevices {
		gotCDI = append(gotCDI, d.Name)
	}
	sort.Strings(gotCDI)
	if !reflect.DeepEqual(gotCDI, cdi) {
		t.Errorf("CDI devices %q, want %q", gotCDI, cdi)
	}
}

// TestKubeletRestart: the kubelet "restarts" (its manager stops, the socket
// directory is wiped — its contents, or on odd rounds the directory itself — and
// a new manager starts); the plugin must be back in the new manager's capacity
// within 2 s every time. The re-registration latency runs from the new manager's
// Start returning (kubelet.sock exists) to its capacity showing both NPUs.
func TestKubeletRestart(t *testing.T) {
	dir := socketDir(t)
	k := startKubelet(t, dir)
	startNode(t, dir, nodeConfig{npus: twoNPUs()})
	k.waitCounts(npuRes, 2, 2, settleTimeout)

	var took []time.Duration
	for i := range repetitions {
		k.stop()
		wipe(t, dir, i%2 == 1)
		k = startKubelet(t, dir)
		took = append(took, k.waitCounts(npuRes, 2, 2, restartTimeout))
	}
	t.Logf("FIGURE re-registration latency after a kubelet restart: %s", stats(took))

	// A longer outage: the plugin backs off while the kubelet is away, yet is
	// back within 2 s of its return because it watches for kubelet.sock.
	k.stop()
	wipe(t, dir, false)
	time.Sleep(3 * time.Second)
	k = startKubelet(t, dir)
	d := k.waitCounts(npuRes, 2, 2, restartTimeout)
	t.Logf("FIGURE re-registration latency after a 3 s kubelet outage: %v", round(d))
	k.stop()
}

// TestOwnSocketRemoved: someone deletes the plugin's socket while the kubelet
// keeps running; the plugin re-serves and re-registers and the resource stays.
func TestOwnSocketRemoved(t *testing.T) {
	dir := socketDir(t)
	k := startKubelet(t, dir)
	defer k.stop()
	n := startNode(t, dir, nodeConfig{npus: twoNPUs()})
	k.waitCounts(npuRes, 2, 2, settleTimeout)
	for range 5 {
		socks, _ := filepath.Glob(filepath.Join(dir, n.plugins[0].SocketPrefix()+"-*.sock"))
		if len(socks) != 1 {
			t.Fatalf("plugin sockets %q, want exactly one", socks)
		}
		if err := os.Remove(socks[0]); err != nil {
			t.Fatal(err)
		}
		waitFor(t, settleTimeout, "a new plugin socket", func() bool {
			now, _ := filepath.Glob(filepath.Join(dir, n.plugins[0].SocketPrefix()+"-*.sock"))
			return len(now) == 1 && now[0] != socks[0] && n.plugins[0].Registered()
		})
		k.waitCounts(npuRes, 2, 2, settleTimeout)
	}
	// The manager drops the endpoints of the replaced sockets as their streams
	// end, which can lag the new registration: allocation works again once it
	// has caught up.
	var err error
	waitFor(t, settleTimeout, "successful allocation after re-registration", func() bool {
		k.setPods()
		_, _, err = k.allocate("after", npuRes, 1)
		return err == nil
	})
}

// TestHealthPropagation: an NPU's node disappears and the manager's healthy
// count (allocatable) drops within 1 s while capacity stays; the node comes back
// and the count recovers within 1 s. Latencies run from the filesystem change to
// the manager's count.
func TestHealthPropagation(t *testing.T) {
	dir := socketDir(t)
	k := startKubelet(t, dir)
	defer k.stop()
	n := startNode(t, dir, nodeConfig{npus: twoNPUs()})
	k.waitCounts(npuRes, 2, 2, settleTimeout)

	var down, up []time.Duration
	for range repetitions {
		n.host.RemoveNode(0)
		down = append(down, k.waitCounts(npuRes, 2, 1, healthTimeout))
		n.host.Mknod(0)
		up = append(up, k.waitCounts(npuRes, 2, 2, healthTimeout))
	}
	t.Logf("FIGURE health propagation, node removed -> manager unhealthy: %s", stats(down))
	t.Logf("FIGURE health propagation, node back -> manager healthy: %s", stats(up))

	// Other ways to break: hot-unplug of the PCI device, driver switched away.
	n.host.RemovePCI("0000:c5:00.1", 1)
	k.waitCounts(npuRes, 2, 1, healthTimeout)
	n.host.Add(fakehost.NPU{PCI: "0000:c5:00.1", Accel: 1})
	k.waitCounts(npuRes, 2, 2, healthTimeout)
	n.host.Bind("0000:c4:00.1", "vfio-pci")
	k.waitCounts(npuRes, 2, 1, healthTimeout)
	n.host.Bind("0000:c4:00.1", "amdxdna")
	k.waitCounts(npuRes, 2, 2, healthTimeout)
	// A node that containers could not open (mode 000) is unhealthy until fixed.
	n.host.Chmod(0, 0)
	k.waitCounts(npuRes, 2, 1, healthTimeout)
	n.host.Chmod(0, 0o600)
	k.waitCounts(npuRes, 2, 2, healthTimeout)

	// A hot-added NPU raises capacity.
	n.host.Add(fakehost.NPU{PCI: "0000:c6:00.1", Accel: 2})
	k.waitCounts(npuRes, 3, 3, healthTimeout)

	// The manager only hands out healthy NPUs.
	n.host.RemoveNode(1)
	k.waitCounts(npuRes, 3, 2, healthTimeout)
	opts, _, err := k.allocate("healthy-only", npuRes, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range opts.Devices {
		if d.PathOnHost == "/dev/accel/accel1" {
			t.Errorf("the unhealthy NPU was allocated: %+v", opts.Devices)
		}
	}
}

// TestSharedMode: with 3 contexts per NPU the manager shows 3 × the NPUs, and
// the kubelet, following GetPreferredAllocation, spreads single-slot pods over
// the NPUs (or packs them with the pack policy).
func TestSharedMode(t *testing.T) {
	for _, tc := range []struct {
		policy plugin.Policy
		want   []string // XDNA_DEVICES of four one-slot pods, in order
	}{
		{plugin.Spread, []string{"/dev/accel/accel0", "/dev/accel/accel1", "/dev/accel/accel0", "/dev/accel/accel1"}},
		{plugin.Pack, []string{"/dev/accel/accel0", "/dev/accel/accel0", "/dev/accel/accel0", "/dev/accel/accel1"}},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			dir := socketDir(t)
			k := startKubelet(t, dir)
			defer k.stop()
			startNode(t, dir, nodeConfig{npus: twoNPUs(), contexts: 3, policy: tc.policy})
			k.waitCounts(npuRes, 6, 6, settleTimeout)
			var got []string
			for i := range 4 {
				opts, _, err := k.allocate(fmt.Sprintf("%s-%d", tc.policy, i), npuRes, 1)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range opts.Envs {
					if e.Name == plugin.EnvDevices {
						got = append(got, e.Value)
					}
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("pods got NPUs %q, want %q", got, tc.want)
			}
			// Two slots of one NPU in one container: one device node.
			k.setPods()
			opts, _, err := k.allocate("two-slots", npuRes, 5)
			if err != nil {
				t.Fatal(err)
			}
			if len(opts.Devices) != 2 {
				t.Errorf("5 slots over 2 NPUs gave %d device nodes, want 2", len(opts.Devices))
			}
		})
	}
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v", what, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}
