package amdxdna

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// amdxdnaNodes lists /dev/accel/accelN nodes whose PCI device has amdxdna
// bound, from the host's sysfs.
func amdxdnaNodes(t *testing.T) []Target {
	t.Helper()
	entries, _ := filepath.Glob("/sys/class/accel/accel*")
	var out []Target
	for _, e := range entries {
		pci, err := filepath.EvalSymlinks(filepath.Join(e, "device"))
		if err != nil {
			continue
		}
		drv, err := os.Readlink(filepath.Join(pci, "driver"))
		if err != nil || filepath.Base(drv) != "amdxdna" {
			continue
		}
		out = append(out, Target{PCIAddress: filepath.Base(pci), NodePath: "/dev/accel/" + filepath.Base(e), SysfsDir: pci})
	}
	return out
}

// TestHardware runs every query against each real amdxdna NPU. It needs the
// hardware and root (the node is 0600); elsewhere it is skipped with the reason.
func TestHardware(t *testing.T) {
	targets := amdxdnaNodes(t)
	if len(targets) == 0 {
		t.Skip("no /sys/class/accel/accel* with the amdxdna driver bound: no XDNA NPU on this machine")
	}
	for _, tg := range targets {
		t.Run(tg.PCIAddress, func(t *testing.T) {
			d, err := Open(tg.NodePath)
			if err != nil {
				t.Skipf("cannot open %s (root needed for a 0600 node): %v", tg.NodePath, err)
			}
			defer d.Close()
			v, err := d.Version()
			if err != nil || v.Name != "amdxdna" {
				t.Errorf("DRM version = %+v, %v; want driver amdxdna", v, err)
			}
			md, err := QueryAIEMetadata(d)
			if err != nil {
				t.Fatalf("AIE metadata: %v", err)
			}
			if md.Columns == 0 || md.Rows == 0 || md.Core.RowCount == 0 {
				t.Errorf("AIE metadata %+v: empty shape", md)
			}
			fw, err := QueryFirmwareVersion(d)
			if err != nil {
				t.Errorf("firmware version: %v", err)
			} else if sys := readAttr(tg.SysfsDir, "fw_version"); sys != "" && sys != fw.String() {
				t.Errorf("firmware %s from GET_INFO, %s from sysfs", fw, sys)
			}
			// The kernel wants col_size × cols bytes (EINVAL when smaller); capped
			// at 16 MiB in case col_size is an address-space size.
			if st, err := d.AIEStatus(min(int(md.ColumnSize)*int(md.Columns), 16<<20)); err != nil && !IsRefused(err) {
				t.Errorf("AIE status: %v", err)
			} else if err == nil && st.ColumnsFilled == 0 {
				t.Log("AIE status: no column filled (no context running)")
			}
			if _, err := QueryAIEVersion(d); err != nil {
				t.Errorf("AIE version: %v", err)
			}
			if _, err := QueryClockMetadata(d); err != nil {
				t.Errorf("clock metadata: %v", err)
			}
			if _, err := QueryPowerMode(d); err != nil {
				t.Errorf("power mode: %v", err)
			}
			if _, err := QueryHWContexts(d); err != nil {
				t.Errorf("hardware contexts: %v", err)
			}
			if s, err := QuerySensors(d); err != nil && !IsRefused(err) {
				t.Errorf("sensors: %v", err)
			} else if err == nil && len(s) == 0 {
				t.Error("sensors: empty reply")
			}
			ri, err := QueryResourceInfo(d)
			switch {
			case IsRefused(err):
				t.Logf("QUERY_RESOURCE_INFO refused (kernel 6.14 to 6.17): %v", err)
			case err != nil:
				t.Errorf("resource info: %v", err)
			case ri.MaxContexts == 0 || ri.ContextsInUse > ri.MaxContexts:
				t.Errorf("resource info %+v: contexts out of range", ri)
			}
			if _, err := QueryHWContextArray(d); err != nil && !IsRefused(err) {
				t.Errorf("GET_ARRAY: %v", err)
			}
			info := (&Inventory{}).Get(tg)
			t.Logf("inventory: %+v", info)
			if info.Firmware == "" || info.Columns == 0 || strings.Contains(strings.Join(info.Notes, " "), "cannot open") {
				t.Errorf("inventory of a real NPU incomplete: %+v", info)
			}
		})
	}
}
