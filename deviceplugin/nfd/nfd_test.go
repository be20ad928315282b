package nfd

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/discovery"
)

func TestLabels(t *testing.T) {
	xdna1 := Resource{Name: "amd.com/npu", Family: discovery.XDNA1, ContextsPerNPU: 2}
	xdna2 := Resource{Name: "amd.com/npu-xdna2", Family: discovery.XDNA2, ContextsPerNPU: 2}
	n := func(addr, fw string) discovery.NPU {
		return discovery.NPU{PCIAddress: addr, Family: discovery.XDNA1, Firmware: fw}
	}
	const head = "" // nothing but labels: no comment NFD might misread
	tests := []struct {
		name string
		npus []discovery.NPU
		want string
	}{
		{"none", nil, head},
		{"two, same firmware", []discovery.NPU{n("0000:c4:00.1", "1.5.2.380"), n("0000:c5:00.1", "1.5.2.380")}, head +
			"amd.com/npu.present=true\namd.com/npu.family=xdna1\namd.com/npu.count=2\namd.com/npu.contexts-per-npu=2\namd.com/npu.firmware=1.5.2.380\n"},
		{"mixed firmware: no firmware label", []discovery.NPU{n("0000:c4:00.1", "1.5.2.380"), n("0000:c5:00.1", "1.5.4.1")}, head +
			"amd.com/npu.present=true\namd.com/npu.family=xdna1\namd.com/npu.count=2\namd.com/npu.contexts-per-npu=2\n"},
		{"firmware not a label value", []discovery.NPU{n("0000:c4:00.1", "1.5 beta")}, head +
			"amd.com/npu.present=true\namd.com/npu.family=xdna1\namd.com/npu.count=1\namd.com/npu.contexts-per-npu=2\n"},
		{"xdna2 resource", []discovery.NPU{{PCIAddress: "0000:c6:00.1", Family: discovery.XDNA2}}, head +
			"amd.com/npu-xdna2.present=true\namd.com/npu-xdna2.family=xdna2\namd.com/npu-xdna2.count=1\namd.com/npu-xdna2.contexts-per-npu=2\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Labels([]Resource{xdna1, xdna2}, tc.npus); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestLabelsWithDriverDetails: the driver's firmware wins over sysfs, and the column count
// is labelled only when every NPU of the family reports the same one.
func TestLabelsWithDriverDetails(t *testing.T) {
	res := []Resource{{Name: "amd.com/npu", Family: discovery.XDNA1, ContextsPerNPU: 1}}
	npus := []discovery.NPU{
		{PCIAddress: "0000:c4:00.1", Family: discovery.XDNA1, Firmware: "1.5.2.380"},
		{PCIAddress: "0000:c5:00.1", Family: discovery.XDNA1, Firmware: "1.5.2.380"},
	}
	const base = "amd.com/npu.present=true\namd.com/npu.family=xdna1\namd.com/npu.count=2\namd.com/npu.contexts-per-npu=1\n"
	tests := []struct {
		name    string
		details map[string]Details
		want    string
	}{
		{"no answers: sysfs", nil, base + "amd.com/npu.firmware=1.5.2.380\n"},
		{"both answered", map[string]Details{"0000:c4:00.1": {"1.5.4.1", 5}, "0000:c5:00.1": {"1.5.4.1", 5}},
			base + "amd.com/npu.firmware=1.5.4.1\namd.com/npu.aie-columns=5\n"},
		{"one answered: firmware differs, columns unknown for one", map[string]Details{"0000:c4:00.1": {"1.5.4.1", 5}}, base},
		{"same firmware, one without columns", map[string]Details{"0000:c4:00.1": {"1.5.2.380", 5}, "0000:c5:00.1": {"", 0}},
			base + "amd.com/npu.firmware=1.5.2.380\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := LabelsWith(res, npus, tc.details); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestWriteRemove(t *testing.T) {
	dir := t.TempDir()
	for _, content := range []string{"a=1\n", "a=2\n"} {
		if err := Write(dir, content); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, FileName))
		if err != nil || string(b) != content {
			t.Fatalf("feature file %q (%v), want %q", b, err, content)
		}
	}
	if err := Remove(dir); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("%d entries left after Remove", len(entries))
	}
}
