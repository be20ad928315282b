// Package nfd writes the Node Feature Discovery feature file that labels a node
// with its NPUs (NFD's "local" feature source reads every file in its
// features.d directory: one "name=value" label per line).
package nfd

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/discovery"
	"github.com/xdna-whisper/xdna-whisper/internal/atomicfile"
)

// FileName is the feature file's name in that directory.
const FileName = "xdna-npu"

// Resource is one advertised resource as the labels describe it.
type Resource struct {
	// Name is the resource name, e.g. "amd.com/npu"; labels are "<Name>.<key>".
	Name string
	// Family is the NPU family the resource holds.
	Family discovery.Family
	// ContextsPerNPU is the sharing factor.
	ContextsPerNPU int
}

// labelValue is what Kubernetes accepts as a label value.
var labelValue = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)

// Details is what the amdxdna driver answered about one NPU (deviceplugin/amdxdna's
// queries); zero values are unknown.
type Details struct {
	// Firmware is the firmware version the driver reports.
	Firmware string
	// Columns is the AIE array's column count.
	Columns int
}

// Labels renders the feature file for the resources and the known NPUs:
// <name>.present, .family, .count, .contexts-per-npu and, when every NPU of the
// family reports the same valid firmware version, .firmware. A resource with no
// NPU gets no labels.
func Labels(resources []Resource, npus []discovery.NPU) string {
	return LabelsWith(resources, npus, nil)
}

// LabelsWith is Labels with the driver's answers by PCI address: an NPU's firmware
// is the driver's when it answered (sysfs otherwise), and .aie-columns is written
// when every NPU of the family reports the same column count.
func LabelsWith(resources []Resource, npus []discovery.NPU, details map[string]Details) string {
	var b strings.Builder
	for _, r := range resources {
		mine := discovery.OfFamily(npus, r.Family)
		count := len(mine)
		firmware, columns := map[string]bool{}, map[int]bool{}
		for _, n := range mine {
			d := details[n.PCIAddress]
			firmware[cmp.Or(d.Firmware, n.Firmware)] = true
			columns[d.Columns] = true
		}
		if count == 0 {
			continue
		}
		fmt.Fprintf(&b, "%s.present=true\n", r.Name)
		fmt.Fprintf(&b, "%s.family=%s\n", r.Name, r.Family)
		fmt.Fprintf(&b, "%s.count=%d\n", r.Name, count)
		fmt.Fprintf(&b, "%s.contexts-per-npu=%s\n", r.Name, strconv.Itoa(r.ContextsPerNPU))
		if len(firmware) == 1 {
			for fw := range firmware {
				if fw != "" && len(fw) <= 63 && labelValue.MatchString(fw) {
					fmt.Fprintf(&b, "%s.firmware=%s\n", r.Name, fw)
				}
			}
		}
		if len(columns) == 1 && !columns[0] {
			for c := range columns {
				fmt.Fprintf(&b, "%s.aie-columns=%d\n", r.Name, c)
			}
		}
	}
	return b.String()
}

// Write replaces <dir>/xdna-npu atomically with content.
func Write(dir, content string) error {
	if err := atomicfile.Write(filepath.Join(dir, FileName), []byte(content), 0o644); err != nil {
		return fmt.Errorf("write NFD feature file: %w", err)
	}
	return nil
}

// Remove deletes <dir>/xdna-npu; a missing file is not an error.
func Remove(dir string) error {
	err := os.Remove(filepath.Join(dir, FileName))
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove NFD feature file: %w", err)
	}
	return nil
}
