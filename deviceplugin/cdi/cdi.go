// Package cdi writes the Container Device Interface spec that names each NPU for
// CDI-aware runtimes (containerd ≥ 1.7, CRI-O ≥ 1.23): one device per NPU, named
// by its PCI address, e.g. "amd.com/npu=0000:c4:00.1", whose container edits add
// the NPU's device node.
package cdi

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/discovery"
	"github.com/xdna-whisper/xdna-whisper/internal/atomicfile"
)

// Version is the CDI spec version written: 0.5.0 is the first that allows a
// device name to start with a digit, as PCI addresses do.
const Version = "0.5.0"

// Spec is the subset of the CDI spec this plugin writes.
type Spec struct {
	// Version is the CDI spec version ("cdiVersion").
	Version string `json:"cdiVersion"`
	// Kind is "<vendor>/<class>", here the resource name, e.g. "amd.com/npu".
	Kind string `json:"kind"`
	// Devices lists one entry per NPU.
	Devices []Device `json:"devices"`
}

// Device is one CDI device.
type Device struct {
	// Name is the NPU's PCI address.
	Name string `json:"name"`
	// ContainerEdits add the NPU's node to the container.
	ContainerEdits Edits `json:"containerEdits"`
}

// Edits is the part of CDI's containerEdits this plugin uses.
type Edits struct {
	// DeviceNodes are the nodes to create in the container.
	DeviceNodes []DeviceNode `json:"deviceNodes"`
	// Env are "NAME=value" entries.
	Env []string `json:"env,omitempty"`
}

// DeviceNode is one device node edit. The optional fields describe the node the
// runtime creates in the container: without FileMode, UID and GID containerd 1.7
// (through runc) creates it 0666 root:root, whatever the host's node is, so
// HostNode sets them all from the host's node.
type DeviceNode struct {
	// Path is the node's path in the container.
	Path string `json:"path"`
	// HostPath is the node's path on the host.
	HostPath string `json:"hostPath"`
	// Permissions are the cgroup permissions ("rw").
	Permissions string `json:"permissions"`
	// Type is the node's type: "c" for a character device.
	Type string `json:"type,omitempty"`
	// Major and Minor are the node's device numbers.
	Major *int64 `json:"major,omitempty"`
	Minor *int64 `json:"minor,omitempty"`
	// FileMode is the node's permission bits as an integer (384 is 0600).
	FileMode *os.FileMode `json:"fileMode,omitempty"`
	// UID and GID own the node in the container (the host's IDs: no user
	// namespace maps them).
	UID *uint32 `json:"uid,omitempty"`
	GID *uint32 `json:"gid,omitempty"`
}

// HostNode returns the edit that gives containers the node at path, which the
// runtime finds at hostPath, as a mirror of the host's node: its type, device
// numbers, permission bits, owner and group are read from statPath, the same
// node as this process sees it (the host's /dev may be mounted elsewhere in the
// plugin's container). A statPath that is missing, or is not a character device,
// is an error naming it and what is there.
func HostNode(path, hostPath, statPath string) (DeviceNode, error) {
	var st unix.Stat_t
	if err := unix.Lstat(statPath, &st); err != nil {
		return DeviceNode{}, fmt.Errorf("device node %s (host path %s): %w", statPath, hostPath, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return DeviceNode{}, fmt.Errorf("device node %s (host path %s): is a %s, want a character device",
			statPath, hostPath, discovery.FileKind(st.Mode))
	}
	major, minor := int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	mode := os.FileMode(st.Mode & 0o777)
	uid, gid := st.Uid, st.Gid
	return DeviceNode{Path: path, HostPath: hostPath, Permissions: "rw", Type: "c",
		Major: &major, Minor: &minor, FileMode: &mode, UID: &uid, GID: &gid}, nil
}

// UnderRoot is the path of devicePath ("/dev/accel/accelN") on a node whose /dev
// is at root ("/dev" when empty).
func UnderRoot(root, devicePath string) string {
	if root == "" {
		return devicePath
	}
	return path.Join(root, strings.TrimPrefix(devicePath, "/dev/"))
}

// Build returns the spec for kind (the resource name) and the NPUs of its family
// on a node whose /dev this process sees at devRoot and the runtime at
// hostDevRoot (each "/dev" when empty). Each node mirrors the host's (HostNode).
// A node that does not check out fails the spec, unless its NPU is unhealthy
// already: that NPU is left out until it is healthy again (the kubelet allocates
// no unhealthy device, and the runtime could not create its node).
func Build(kind, devRoot, hostDevRoot string, npus []discovery.NPU) (Spec, error) {
	s := Spec{Version: Version, Kind: kind, Devices: []Device{}}
	for _, n := range npus {
		node, err := HostNode(n.DevicePath, UnderRoot(hostDevRoot, n.DevicePath), UnderRoot(devRoot, n.DevicePath))
		if err != nil && !n.Healthy {
			continue
		}
		if err != nil {
			return Spec{}, fmt.Errorf("CDI spec %s, NPU %s: %w", kind, n.PCIAddress, err)
		}
		s.Devices = append(s.Devices, Device{Name: n.PCIAddress, ContainerEdits: Edits{DeviceNodes: []DeviceNode{node}}})
	}
	return s, nil
}

// FileName is the spec's file name in the CDI directory: the kind with '/'
// replaced, e.g. "amd.com-npu.json".
func FileName(kind string) string {
	return strings.ReplaceAll(kind, "/", "-") + ".json"
}

// Write writes s to dir atomically (a temporary file in dir, synced, then renamed
// over the spec), creating dir if needed, and returns the spec's path.
func Write(dir string, s Spec) (string, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode CDI spec %s: %w", s.Kind, err)
	}
	path := filepath.Join(dir, FileName(s.Kind))
	if err := atomicfile.Write(path, append(b, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("write CDI spec: %w", err)
	}
	return path, nil
}

// Remove deletes kind's spec from dir; a missing file is not an error.
func Remove(dir, kind string) error {
	err := os.Remove(filepath.Join(dir, FileName(kind)))
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove CDI spec: %w", err)
	}
	return nil
}
