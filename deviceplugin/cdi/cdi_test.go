package cdi

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/discovery"
)

func TestWriteAndRemove(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cdi") // created on demand
	npus := []discovery.NPU{
		{PCIAddress: "0000:c4:00.1", DevicePath: "/dev/accel/accel0"},
		{PCIAddress: "0000:c5:00.1", DevicePath: "/dev/accel/accel1"},
	}
	path, err := Write(dir, Build("amd.com/npu", "", npus))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "amd.com-npu.json" {
		t.Errorf("spec file %s, want amd.com-npu.json", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Decode generically: the file must be CDI's JSON, not just our struct's.
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"cdiVersion": "0.5.0",
		"kind":       "amd.com/npu",
		"devices": []any{
			map[string]any{"name": "0000:c4:00.1", "containerEdits": map[string]any{"deviceNodes": []any{
				map[string]any{"path": "/dev/accel/accel0", "hostPath": "/dev/accel/accel0", "permissions": "rw"}}}},
			map[string]any{"name": "0000:c5:00.1", "containerEdits": map[string]any{"deviceNodes": []any{
				map[string]any{"path": "/dev/accel/accel1", "hostPath": "/dev/accel/accel1", "permissions": "rw"}}}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("spec\n%s\nwant %v", b, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("CDI dir holds %d entries, want only the spec (no temporary files left)", len(entries))
	}
	if err := Remove(dir, "amd.com/npu"); err != nil {
		t.Fatal(err)
	}
	if err := Remove(dir, "amd.com/npu"); err != nil {
		t.Errorf("removing a missing spec: %v", err)
	}
}

func TestBuildHostDevRoot(t *testing.T) {
	npus := []discovery.NPU{{PCIAddress: "0000:c4:00.1", DevicePath: "/dev/accel/accel0"}}
	for _, tc := range []struct{ root, wantHost string }{
		{"", "/dev/accel/accel0"},
		{"/dev", "/dev/accel/accel0"},
		{"/var/lib/node/dev", "/var/lib/node/dev/accel/accel0"},
	} {
		got := Build("amd.com/npu", tc.root, npus).Devices[0].ContainerEdits.DeviceNodes
		want := []DeviceNode{{Path: "/dev/accel/accel0", HostPath: tc.wantHost, Permissions: "rw"}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("host dev root %q: device nodes %+v, want %+v", tc.root, got, want)
		}
	}
}
