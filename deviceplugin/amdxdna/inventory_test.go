package amdxdna

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sysfsDir makes a PCI device directory with amdxdna's attributes.
func sysfsDir(t *testing.T, fw string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "0000:c4:00.1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	attrs := map[string]string{"vbnv": "RyzenAI-npu1", "device_type": "1"}
	if fw != "" {
		attrs["fw_version"] = fw
	}
	for k, v := range attrs {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func phoenix() *fakeDevice {
	return &fakeDevice{
		info: map[Param]reply{
			ParamAIEMetadata:     phoenixMetadata(),
			ParamFirmwareVersion: firmwareReply(1, 5, 2, 380),
			ParamResourceInfo:    resourceReply(1810, 10, 6, 10, 2),
			ParamPowerMode:       reply{}.u8(0).zeros(7),
		},
		version: &DRMVersion{Major: 0, Minor: 6, Patch: 0, Name: "amdxdna"},
	}
}

func TestInventoryFromDriver(t *testing.T) {
	f := phoenix()
	inv := &Inventory{Open: func(string) (Querier, error) { return f, nil }}
	info := inv.Get(Target{PCIAddress: "0000:c4:00.1", NodePath: "/dev/accel/accel0", SysfsDir: sysfsDir(t, "9.9.9.9")})
	if info.Firmware != "1.5.2.380" || info.FirmwareSource != FromDriver {
		t.Errorf("firmware %q from %q, want 1.5.2.380 from the driver (the ioctl wins over sysfs)", info.Firmware, info.FirmwareSource)
	}
	if info.Columns != 5 || info.Rows != 6 || info.AIEVersion != "2.0" {
		t.Errorf("shape %d×%d AIE %s, want 5×6 AIE 2.0", info.Columns, info.Rows, info.AIEVersion)
	}
	if info.MaxContexts != 6 || info.ContextsInUse != 2 {
		t.Errorf("contexts %d/%d, want 2/6", info.ContextsInUse, info.MaxContexts)
	}
	if info.DriverName != "amdxdna" || info.DriverVersion != "0.6.0" || info.PowerMode != "default" {
		t.Errorf("driver %s %s power %s", info.DriverName, info.DriverVersion, info.PowerMode)
	}
	if info.VBNV != "RyzenAI-npu1" || info.DeviceType != "1" {
		t.Errorf("sysfs attributes vbnv %q device_type %q", info.VBNV, info.DeviceType)
	}
	if len(info.Notes) != 0 {
		t.Errorf("notes %q, want none", info.Notes)
	}
	if !f.closed {
		t.Error("device left open")
	}
}

// A 6.14 kernel: no RESOURCE_INFO, no GET_ARRAY; firmware refused too (as by a
// non-root caller): the Inventory counts contexts the old way and takes the
// firmware from sysfs, saying why.
func TestInventoryFallsBackWhenRefused(t *testing.T) {
	f := phoenix()
	delete(f.info, ParamResourceInfo)
	f.arrayErr = unix.ENOTTY
	f.infoErr = map[Param]unix.Errno{ParamFirmwareVersion: unix.EPERM}
	f.info[ParamHWContexts] = append(
		reply{}.u32(1).u32(1).u32(2).u32(0).u64(1).u64(0).u64(0).u64(0).u64(0).u64(0),
		reply{}.u32(2).u32(3).u32(2).u32(0).u64(2).u64(0).u64(0).u64(0).u64(0).u64(0)...)
	inv := &Inventory{Open: func(string) (Querier, error) { return f, nil }}
	info := inv.Get(Target{PCIAddress: "0000:c4:00.1", NodePath: "/dev/accel/accel0", SysfsDir: sysfsDir(t, "1.5.2.380")})
	if info.Firmware != "1.5.2.380" || info.FirmwareSource != FromSysfs {
		t.Errorf("firmware %q from %q, want 1.5.2.380 from sysfs", info.Firmware, info.FirmwareSource)
	}
	if info.MaxContexts != -1 || info.ContextsInUse != 2 {
		t.Errorf("contexts %d/%d, want 2 in use of an unknown limit", info.ContextsInUse, info.MaxContexts)
	}
	notes := strings.Join(info.Notes, "\n")
	for _, want := range []string{
		"QUERY_FIRMWARE_VERSION: refused, EPERM",
		"QUERY_RESOURCE_INFO: refused, EOPNOTSUPP",
		"GET_ARRAY HW_CONTEXT_ALL: refused, ENOTTY",
		"firmware version from sysfs fw_version",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
}

func TestInventoryOpenFailureUsesSysfs(t *testing.T) {
	sys := t.TempDir()
	mod := filepath.Join(sys, "module", "amdxdna")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mod, "version"), []byte("2.19.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	inv := &Inventory{SysfsRoot: sys, Open: func(p string) (Querier, error) {
		return nil, &QueryError{Path: p, Op: "open", Errno: unix.ENXIO, Err: unix.ENXIO}
	}}
	info := inv.Get(Target{PCIAddress: "a", NodePath: "/dev/accel/accel0", SysfsDir: sysfsDir(t, "1.5.2.380")})
	if info.Firmware != "1.5.2.380" || info.DriverVersion != "2.19.0" || info.DriverVersionSource != FromSysfs {
		t.Errorf("info %+v, want firmware and driver version from sysfs", info)
	}
	if info.Columns != 0 || info.MaxContexts != -1 {
		t.Errorf("shape %d, max contexts %d: want unknown", info.Columns, info.MaxContexts)
	}
	if !strings.Contains(info.Notes[0], "cannot open /dev/accel/accel0 (failed, ENXIO") {
		t.Errorf("first note %q", info.Notes[0])
	}
}

func TestInventoryCachesAndRequeriesRarely(t *testing.T) {
	f := phoenix()
	opens := 0
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	inv := &Inventory{MaxAge: time.Minute, Now: func() time.Time { return now },
		Open: func(string) (Querier, error) { opens++; return f, nil }}
	tg := Target{PCIAddress: "0000:c4:00.1", NodePath: "/dev/accel/accel0", SysfsDir: sysfsDir(t, "")}
	inv.Get(tg)
	perRefresh := f.queries
	if perRefresh == 0 || opens != 1 {
		t.Fatalf("first Get: %d queries, %d opens", perRefresh, opens)
	}
	now = now.Add(59 * time.Second)
	inv.Get(tg)
	if f.queries != perRefresh || opens != 1 {
		t.Errorf("Get within MaxAge asked the device again (%d queries, %d opens)", f.queries, opens)
	}
	now = now.Add(2 * time.Second)
	inv.Get(tg)
	if opens != 2 {
		t.Errorf("Get after MaxAge: %d opens, want 2", opens)
	}
	tg.NodePath = "/dev/accel/accel1" // driver reloaded: new minor
	inv.Get(tg)
	if opens != 3 {
		t.Errorf("Get after the node changed: %d opens, want 3", opens)
	}
	inv.Forget(tg.PCIAddress)
	inv.Get(tg)
	if opens != 4 {
		t.Errorf("Get after Forget: %d opens, want 4", opens)
	}
}
