package plugin

import (
	"reflect"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/discovery"
)

func npu(addr, accel string, numa int, healthy bool) discovery.NPU {
	n := discovery.NPU{PCIAddress: addr, AccelName: accel, DevicePath: "/dev/accel/" + accel,
		DeviceID: 0x1502, Family: discovery.XDNA1, NUMANode: numa, Healthy: healthy}
	if !healthy {
		n.Problem = "device node /dev/accel/" + accel + ": missing"
	}
	return n
}

func twoNPUs() []discovery.NPU {
	return []discovery.NPU{npu("0000:c4:00.1", "accel0", 0, true), npu("0000:c5:00.1", "accel1", -1, true)}
}

func TestAPIDevices(t *testing.T) {
	npus := []discovery.NPU{npu("0000:c4:00.1", "accel0", 1, true), npu("0000:c5:00.1", "accel1", -1, false)}
	tests := []struct {
		contexts int
		want     []string // "id health numa"
	}{
		{1, []string{"0000:c4:00.1 Healthy 1", "0000:c5:00.1 Unhealthy -"}},
		{3, []string{
			"0000:c4:00.1-0 Healthy 1", "0000:c4:00.1-1 Healthy 1", "0000:c4:00.1-2 Healthy 1",
			"0000:c5:00.1-0 Unhealthy -", "0000:c5:00.1-1 Unhealthy -", "0000:c5:00.1-2 Unhealthy -",
		}},
	}
	for _, tc := range tests {
		var got []string
		for _, d := range newInventory(npus, tc.contexts).apiDevices() {
			numa := "-"
			if d.Topology != nil {
				numa = string(rune('0' + d.Topology.Nodes[0].ID))
			}
			got = append(got, d.ID+" "+d.Health+" "+numa)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("contexts %d: got %q, want %q", tc.contexts, got, tc.want)
		}
	}
}

func TestResolve(t *testing.T) {
	npus := []discovery.NPU{npu("0000:c4:00.1", "accel0", 0, true), npu("0000:c5:00.1", "accel1", 0, false)}
	tests := []struct {
		name     string
		contexts int
		ids      []string
		want     []string // device paths
		err      string
	}{
		{"one", 1, []string{"0000:c4:00.1"}, []string{"/dev/accel/accel0"}, ""},
		{"unknown", 1, []string{"0000:c4:00.1", "0000:99:00.1"}, nil, "unknown device IDs 0000:99:00.1; this node advertises IDs 0000:c4:00.1, 0000:c5:00.1"},
		{"unhealthy", 1, []string{"0000:c5:00.1"}, nil, "unhealthy device IDs: 0000:c5:00.1 (device node /dev/accel/accel1: missing)"},
		{"slots of one NPU share its node", 4, []string{"0000:c4:00.1-3", "0000:c4:00.1-0"}, []string{"/dev/accel/accel0"}, ""},
		{"slot out of range", 4, []string{"0000:c4:00.1-4"}, nil, "unknown device IDs 0000:c4:00.1-4; this node advertises IDs <address>-<0..3>"},
		{"slot not a number", 4, []string{"0000:c4:00.1-x"}, nil, "unknown device IDs 0000:c4:00.1-x"},
		{"slot with leading zero", 4, []string{"0000:c4:00.1-01"}, nil, "unknown device IDs 0000:c4:00.1-01"},
		{"bare address when shared", 4, []string{"0000:c4:00.1"}, nil, "unknown device IDs 0000:c4:00.1"},
		{"slot ID when not shared", 1, []string{"0000:c4:00.1-0"}, nil, "unknown device IDs 0000:c4:00.1-0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := newInventory(npus, tc.contexts).resolve("amd.com/npu", tc.ids)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var paths []string
			for _, n := range got {
				paths = append(paths, n.DevicePath)
			}
			if !reflect.DeepEqual(paths, tc.want) {
				t.Errorf("got %q, want %q", paths, tc.want)
			}
		})
	}
}

func TestPrefer(t *testing.T) {
	inv := newInventory(twoNPUs(), 3)
	all := []string{"0000:c4:00.1-0", "0000:c4:00.1-1", "0000:c4:00.1-2", "0000:c5:00.1-0", "0000:c5:00.1-1", "0000:c5:00.1-2"}
	tests := []struct {
		name        string
		policy      Policy
		available   []string
		mustInclude []string
		size        int
		want        []string
	}{
		{"spread, all free: lowest address first", Spread, all, nil, 1, []string{"0000:c4:00.1-0"}},
		{"spread, two: one per NPU", Spread, all, nil, 2, []string{"0000:c4:00.1-0", "0000:c5:00.1-0"}},
		{"spread avoids the loaded NPU", Spread, all[1:], nil, 1, []string{"0000:c5:00.1-0"}},
		{"pack, all free: lowest address first", Pack, all, nil, 2, []string{"0000:c4:00.1-0", "0000:c4:00.1-1"}},
		{"pack fills the loaded NPU", Pack, []string{"0000:c4:00.1-2", "0000:c5:00.1-0", "0000:c5:00.1-1", "0000:c5:00.1-2"}, nil, 1, []string{"0000:c4:00.1-2"}},
		{"pack overflows to the next NPU", Pack, []string{"0000:c4:00.1-2", "0000:c5:00.1-0", "0000:c5:00.1-1", "0000:c5:00.1-2"}, nil, 2, []string{"0000:c4:00.1-2", "0000:c5:00.1-0"}},
		{"must include comes first and counts as load", Spread, all, []string{"0000:c5:00.1-2"}, 2, []string{"0000:c5:00.1-2", "0000:c4:00.1-0"}},
		{"unknown available IDs are ignored", Spread, []string{"bogus", "0000:c5:00.1-1"}, nil, 1, []string{"0000:c5:00.1-1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := inv.prefer(tc.policy, tc.available, tc.mustInclude, tc.size)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	ok := Options{ResourceName: "amd.com/npu", Family: discovery.XDNA1, PluginDir: "/var/lib/kubelet/device-plugins", ContextsPerNPU: 1}
	tests := []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"unqualified resource", func(o *Options) { o.ResourceName = "npu" }, `resource name "npu"`},
		{"kubernetes.io resource", func(o *Options) { o.ResourceName = "kubernetes.io/npu" }, "vendor-qualified"},
		{"zero contexts", func(o *Options) { o.ContextsPerNPU = 0 }, "contexts per NPU 0, want at least 1"},
		{"bad policy", func(o *Options) { o.Policy = "random" }, `allocation policy "random"`},
		{"relative dir", func(o *Options) { o.PluginDir = "plugins" }, "not an absolute path"},
	}
	if _, err := New(ok); err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
	for _, tc := range tests {
		o := ok
		tc.change(&o)
		if _, err := New(o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestOwnsSocket(t *testing.T) {
	p, err := New(Options{ResourceName: "amd.com/npu", Family: discovery.XDNA1, PluginDir: "/x", ContextsPerNPU: 1})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"amd.com_npu-1.sock":       true,
		"amd.com_npu-42.sock":      true,
		"amd.com_npu-xdna2-1.sock": false, // the XDNA2 resource's socket
		"amd.com_npu-.sock":        false,
		"amd.com_npu-1.sock.tmp":   false,
		"kubelet.sock":             false,
	} {
		if got := p.ownsSocket(name); got != want {
			t.Errorf("ownsSocket(%q) = %v, want %v", name, got, want)
		}
	}
}
