package cdi

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/discovery"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/fakehost"
)

// twoNPUs makes accel0 and accel1 on a fake host and returns their NPUs.
func twoNPUs(t *testing.T) (*fakehost.Host, []discovery.NPU) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0})
	h.Add(fakehost.NPU{PCI: "0000:c5:00.1", Accel: 1})
	return h, []discovery.NPU{
		{PCIAddress: "0000:c4:00.1", DevicePath: "/dev/accel/accel0", Healthy: true},
		{PCIAddress: "0000:c5:00.1", DevicePath: "/dev/accel/accel1", Healthy: true},
	}
}

func TestWriteAndRemove(t *testing.T) {
	h, npus := twoNPUs(t)
	h.Chmod(1, 0o660)
	if err := os.Chown(h.NodePath(1), 0, 44); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "cdi") // created on demand
	spec, err := Build("amd.com/npu", h.Dev, "", npus)
	if err != nil {
		t.Fatal(err)
	}
	path, err := Write(dir, spec)
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
	// JSON numbers decode as float64; fileMode 384 is 0600, 432 is 0660.
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	node := func(accel, mode, gid float64) map[string]any {
		p := "/dev/accel/accel" + string(rune('0'+int(accel)))
		return map[string]any{"path": p, "hostPath": p, "permissions": "rw", "type": "c",
			"major": float64(fakehost.AccelMajor), "minor": accel, "fileMode": mode, "uid": 0.0, "gid": gid}
	}
	want := map[string]any{
		"cdiVersion": "0.5.0",
		"kind":       "amd.com/npu",
		"devices": []any{
			map[string]any{"name": "0000:c4:00.1", "containerEdits": map[string]any{"deviceNodes": []any{node(0, 384, 0)}}},
			map[string]any{"name": "0000:c5:00.1", "containerEdits": map[string]any{"deviceNodes": []any{node(1, 432, 44)}}},
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
	h, npus := twoNPUs(t)
	for _, tc := range []struct{ root, wantHost string }{
		{"", "/dev/accel/accel0"},
		{"/dev", "/dev/accel/accel0"},
		{"/var/lib/node/dev", "/var/lib/node/dev/accel/accel0"},
	} {
		spec, err := Build("amd.com/npu", h.Dev, tc.root, npus[:1])
		if err != nil {
			t.Fatal(err)
		}
		got := spec.Devices[0].ContainerEdits.DeviceNodes
		if len(got) != 1 || got[0].Path != "/dev/accel/accel0" || got[0].HostPath != tc.wantHost || got[0].FileMode == nil {
			t.Errorf("host dev root %q: device nodes %+v, want /dev/accel/accel0 from %s with a mode", tc.root, got, tc.wantHost)
		}
	}
}

func TestHostNodeMirrorsHost(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 3})
	for _, tc := range []struct {
		mode     os.FileMode
		uid, gid uint32
	}{{0o600, 0, 0}, {0o660, 0, 44}, {0o640, 1000, 992}} {
		h.Chmod(3, tc.mode)
		if err := os.Chown(h.NodePath(3), int(tc.uid), int(tc.gid)); err != nil {
			t.Fatal(err)
		}
		n, err := HostNode("/dev/accel/accel3", "/host/dev/accel/accel3", h.NodePath(3))
		if err != nil {
			t.Fatal(err)
		}
		if n.Path != "/dev/accel/accel3" || n.HostPath != "/host/dev/accel/accel3" || n.Permissions != "rw" || n.Type != "c" ||
			*n.Major != fakehost.AccelMajor || *n.Minor != 3 || *n.FileMode != tc.mode || *n.UID != tc.uid || *n.GID != tc.gid {
			t.Errorf("node %s: %+v mode %o major %d minor %d uid %d gid %d, want c %d:3 mode %o uid %d gid %d",
				h.NodePath(3), n, *n.FileMode, *n.Major, *n.Minor, *n.UID, *n.GID, fakehost.AccelMajor, tc.mode, tc.uid, tc.gid)
		}
	}
}

func TestNodeThatIsNotADevice(t *testing.T) {
	h, npus := twoNPUs(t)
	h.ReplaceNodeWithFile(1)
	_, err := Build("amd.com/npu", h.Dev, "", npus)
	if err == nil || !strings.Contains(err.Error(), h.NodePath(1)) || !strings.Contains(err.Error(), "is a regular file, want a character device") ||
		!strings.Contains(err.Error(), "0000:c5:00.1") {
		t.Fatalf("Build with a regular file for accel1: %v, want an error naming %s, the NPU and what it is", err, h.NodePath(1))
	}
	h.RemoveNode(1)
	if _, err := HostNode("/dev/accel/accel1", "/dev/accel/accel1", h.NodePath(1)); err == nil ||
		!strings.Contains(err.Error(), h.NodePath(1)) || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("HostNode of a missing node: %v, want an error naming %s", err, h.NodePath(1))
	}
	// An NPU already unhealthy is left out rather than failing the others' spec.
	npus[1].Healthy, npus[1].Problem = false, "device node missing"
	spec, err := Build("amd.com/npu", h.Dev, "", npus)
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Devices) != 1 || spec.Devices[0].Name != "0000:c4:00.1" {
		t.Errorf("spec with accel1 unhealthy and gone: %+v, want only 0000:c4:00.1", spec.Devices)
	}
}
