// Package cdi writes the Container Device Interface spec that names each NPU for
// CDI-aware runtimes (containerd ≥ 1.7, CRI-O ≥ 1.23): one device per NPU, named
// by its PCI address, e.g. "amd.com/npu=0000:c4:00.1", whose container edits add
// the NPU's device node.
package cdi

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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

// DeviceNode is one device node edit.
type DeviceNode struct {
	// Path is the node's path in the container.
	Path string `json:"path"`
	// HostPath is the node's path on the host.
	HostPath string `json:"hostPath"`
	// Permissions are the cgroup permissions ("rw").
	Permissions string `json:"permissions"`
}

// Build returns the spec for kind (the resource name) and the NPUs of its family,
// on a node whose /dev is at hostDevRoot ("/dev" when empty) as the runtime sees it.
func Build(kind, hostDevRoot string, npus []discovery.NPU) Spec {
	s := Spec{Version: Version, Kind: kind, Devices: []Device{}}
	for _, n := range npus {
		s.Devices = append(s.Devices, Device{
			Name: n.PCIAddress,
			ContainerEdits: Edits{
				DeviceNodes: []DeviceNode{{Path: n.DevicePath, HostPath: n.HostPath(hostDevRoot), Permissions: "rw"}},
			},
		})
	}
	return s
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
