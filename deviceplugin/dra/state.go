package dra

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/types"

	"github.com/xdna-whisper/xdna-whisper/internal/atomicfile"
)

// CheckpointFile is the name of the prepared-claims checkpoint in the plugin's
// data directory.
const CheckpointFile = "checkpoint.json"

// checkpointVersion is the checkpoint format's version.
const checkpointVersion = 1

// PreparedDevice is one NPU prepared for one request of a claim.
type PreparedDevice struct {
	// Requests are the claim's request names this device serves.
	Requests []string `json:"requests"`
	// Pool and Device name the device in the ResourceSlice.
	Pool   string `json:"pool"`
	Device string `json:"device"`
	// ShareID is the allocation's share of a multi-allocatable device.
	ShareID *types.UID `json:"shareID,omitempty"`
	// PCIAddress and DevicePath identify the NPU on the node.
	PCIAddress string `json:"pciAddress"`
	DevicePath string `json:"devicePath"`
	// Contexts is the hardware contexts the allocation consumed.
	Contexts int64 `json:"contexts"`
	// CDIDevice is the fully qualified CDI device name handed to the runtime.
	CDIDevice string `json:"cdiDevice"`
}

// PreparedClaim is one prepared ResourceClaim.
type PreparedClaim struct {
	Namespace string           `json:"namespace"`
	Name      string           `json:"name"`
	Devices   []PreparedDevice `json:"devices"`
}

// checkpoint is the on-disk state: every claim prepared and not yet
// unprepared, so a restarted driver can unprepare them and count their
// contexts.
type checkpoint struct {
	Version int                         `json:"version"`
	Claims  map[types.UID]PreparedClaim `json:"claims"`
}

// loadCheckpoint reads the checkpoint at path; a missing file is an empty
// state. A file that does not parse is an error naming it: silently starting
// empty would forget claims that hold contexts.
func loadCheckpoint(path string) (map[types.UID]PreparedClaim, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[types.UID]PreparedClaim{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	var c checkpoint
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("checkpoint %s is corrupt (%v); move it away to start with no prepared claims", path, err)
	}
	if c.Version != checkpointVersion {
		return nil, fmt.Errorf("checkpoint %s has version %d, want %d", path, c.Version, checkpointVersion)
	}
	if c.Claims == nil {
		c.Claims = map[types.UID]PreparedClaim{}
	}
	return c.Claims, nil
}

// saveCheckpoint writes claims to path atomically.
func saveCheckpoint(path string, claims map[types.UID]PreparedClaim) error {
	if err := writeJSON(path, checkpoint{Version: checkpointVersion, Claims: claims}); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	return nil
}

// writeJSON writes v as indented JSON to path atomically (a synced temporary
// file renamed over it), creating the directory.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o644)
}
