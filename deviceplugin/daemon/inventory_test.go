package daemon

import (
	"encoding/binary"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/amdxdna"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/discovery"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/fakehost"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/nfd"
)

// answeringNPU is an amdxdna device that answers the firmware, AIE metadata and resource info
// queries with kernel-shaped replies (little-endian, the header's layout) and refuses the rest.
type answeringNPU struct{}

func (answeringNPU) GetInfo(p amdxdna.Param, buf []byte) (int, error) {
	le := binary.LittleEndian
	switch p {
	case amdxdna.ParamFirmwareVersion: // major, minor, patch, build: u32 each
		for i, v := range []uint32{1, 5, 4, 7} {
			le.PutUint32(buf[4*i:], v)
		}
	case amdxdna.ParamAIEMetadata: // col_size u32, cols u16, rows u16, ...
		le.PutUint16(buf[4:], 5)
		le.PutUint16(buf[6:], 6)
	case amdxdna.ParamResourceInfo: // clk_max, tops_max, task_max, tops_curr, task_curr: u64 each
		le.PutUint64(buf[16:], 6)
		le.PutUint64(buf[32:], 2)
	default:
		return 0, syscall.EINVAL
	}
	return len(buf), nil
}

func (answeringNPU) GetArray(amdxdna.ArrayParam, uint32, []byte) (uint32, uint32, error) {
	return 0, 0, syscall.EINVAL
}
func (answeringNPU) Version() (amdxdna.DRMVersion, error) {
	return amdxdna.DRMVersion{Name: "amdxdna", Major: 0, Minor: 6}, nil
}
func (answeringNPU) Close() error { return nil }

// TestDriverDetailsReachLabelsAndMetrics: what the driver answers becomes the NFD labels
// (its firmware over sysfs, the AIE columns) and the hardware-context gauges; an unhealthy
// NPU is forgotten (asked again when back) and reported nowhere; the NPU is asked once for
// both (the inventory's cache).
func TestDriverDetailsReachLabelsAndMetrics(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0, Firmware: "1.5.2.380"})
	var opened atomic.Int32
	d := &daemon{
		resources: []nfd.Resource{{Name: "amd.com/npu", Family: discovery.XDNA1, ContextsPerNPU: 1}},
		scanner:   discovery.Scanner{SysfsRoot: h.Sys, DevRoot: h.Dev, DeviceIDs: discovery.DefaultDeviceIDs},
		inventory: &amdxdna.Inventory{SysfsRoot: h.Sys, Open: func(string) (amdxdna.Querier, error) {
			opened.Add(1)
			return answeringNPU{}, nil
		}},
	}
	obs, err := d.scanner.Scan()
	if err != nil {
		t.Fatal(err)
	}
	npus := discovery.NewTracker().Update(obs)
	if len(npus) != 1 || !npus[0].Healthy {
		t.Fatalf("fake host scanned as %+v, want one healthy NPU", npus)
	}
	labels := nfd.LabelsWith(d.resources, npus, d.details(npus))
	for _, want := range []string{"amd.com/npu.firmware=1.5.4.7\n", "amd.com/npu.aie-columns=5\n"} {
		if !strings.Contains(labels, want) {
			t.Errorf("labels lack %q:\n%s", want, labels)
		}
	}
	d.npus = npus
	reg := prometheus.NewRegistry()
	reg.MustRegister(newContextsCollector(d))
	want := `
# HELP xdna_device_plugin_npu_hw_contexts Hardware contexts of each healthy NPU as the amdxdna driver reports them (all processes), by state: max or in_use; as of the last query, at most 10 minutes old.
# TYPE xdna_device_plugin_npu_hw_contexts gauge
xdna_device_plugin_npu_hw_contexts{pci_address="0000:c4:00.1",state="in_use"} 2
xdna_device_plugin_npu_hw_contexts{pci_address="0000:c4:00.1",state="max"} 6
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if n := opened.Load(); n != 1 {
		t.Errorf("the NPU was opened %d times for labels and a scrape, want 1 (cached)", n)
	}

	npus[0].Healthy = false
	d.npus = npus
	if got := d.details(npus); len(got) != 0 {
		t.Errorf("details of an unhealthy NPU: %+v", got)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Errorf("%d context gauges (%v) for an unhealthy NPU, want none", n, err)
	}
}
