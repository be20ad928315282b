package amdxdna

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// AIEVersion is the AIE array's architecture version (2.0 on XDNA1's AIE-ML).
type AIEVersion struct{ Major, Minor uint32 }

// String is "major.minor".
func (v AIEVersion) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// TileMetadata describes one kind of AIE tile row (core, memory or shim).
type TileMetadata struct {
	RowCount, RowStart, DMAChannelCount, LockCount, EventRegCount uint16
}

// AIEMetadata is QUERY_AIE_METADATA's reply: the array's shape.
type AIEMetadata struct {
	// ColumnSize is the size of one column's address space in bytes.
	ColumnSize uint32
	// Columns and Rows are the whole array's (5 and 6 on Phoenix: 4 core rows,
	// 1 memory row, 1 shim row).
	Columns, Rows   uint16
	Version         AIEVersion
	Core, Mem, Shim TileMetadata
}

// Clock is one named clock and its frequency.
type Clock struct {
	Name    string
	FreqMHz uint32
}

// ClockMetadata is QUERY_CLOCK_METADATA's reply.
type ClockMetadata struct{ MPNPU, H Clock }

// Sensor is one entry of QUERY_SENSORS's reply.
type Sensor struct {
	Label                        string
	Input, Max, Average, Highest uint32
	Status, Units                string
	// UnitM scales the values: value × 10^UnitM units.
	UnitM int8
	// Type is enum amdxdna_sensor_type (0 power, 1 column utilisation).
	Type uint8
}

// HWContext is one hardware context as QUERY_HW_CONTEXTS (struct
// amdxdna_drm_query_hwctx) or GET_ARRAY HW_CONTEXT_ALL (struct
// amdxdna_drm_hwctx_entry) reports it; fields the older query lacks are zero.
type HWContext struct {
	ContextID, StartColumn, Columns uint32
	// HWContextID is the firmware's context slot (GET_ARRAY only).
	HWContextID                                               uint32
	PID                                                       int64
	Submissions, Completions, Migrations, Preemptions, Errors uint64
	// Priority, HeapUsage, Suspensions, State (0 idle, 1 active) and PASID come
	// from GET_ARRAY only.
	Priority, HeapUsage, Suspensions uint64
	State, PASID                     uint32
}

// FirmwareVersion is QUERY_FIRMWARE_VERSION's reply.
type FirmwareVersion struct{ Major, Minor, Patch, Build uint32 }

// String is "major.minor.patch.build", as amdxdna's sysfs fw_version prints it.
func (v FirmwareVersion) String() string {
	return fmt.Sprintf("%d.%d.%d.%d", v.Major, v.Minor, v.Patch, v.Build)
}

// PowerMode is enum amdxdna_power_mode_type.
type PowerMode uint8

// Power modes.
const (
	PowerModeDefault PowerMode = iota
	PowerModeLow
	PowerModeMedium
	PowerModeHigh
	PowerModeTurbo
)

// String names the mode.
func (m PowerMode) String() string {
	switch m {
	case PowerModeDefault:
		return "default"
	case PowerModeLow:
		return "low"
	case PowerModeMedium:
		return "medium"
	case PowerModeHigh:
		return "high"
	case PowerModeTurbo:
		return "turbo"
	}
	return fmt.Sprintf("unknown(%d)", uint8(m))
}

// ResourceInfo is QUERY_RESOURCE_INFO's reply.
type ResourceInfo struct {
	// MaxClockMHz is the highest H-clock of the device's DPM table.
	MaxClockMHz uint64
	// MaxTOPS and CurrentTOPS are the peak and current-DPM-level TOPS.
	MaxTOPS, CurrentTOPS uint64
	// MaxContexts is the hardware-context limit (6 on Phoenix); ContextsInUse
	// is how many exist now, across all processes.
	MaxContexts, ContextsInUse uint64
}

// DRMVersion is DRM_IOCTL_VERSION's reply: the bound driver's name and version.
type DRMVersion struct {
	Major, Minor, Patch int32
	Name, Date, Desc    string
}

// String is "major.minor.patch".
func (v DRMVersion) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// decodeRaw decodes a kernel reply b into the header-shaped struct raw. A reply
// shorter than the struct is an error naming both sizes; extra bytes (a newer
// kernel's longer struct) are ignored.
func decodeRaw(what string, b []byte, raw any) error {
	want := binary.Size(raw)
	if len(b) < want {
		return fmt.Errorf("%s: reply is %d bytes, want at least %d", what, len(b), want)
	}
	if _, err := binary.Decode(b[:want], binary.NativeEndian, raw); err != nil {
		return fmt.Errorf("%s: decode %d bytes: %w", what, want, err)
	}
	return nil
}

// cString is a NUL-terminated fixed-size C string.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// DecodeAIEMetadata parses a QUERY_AIE_METADATA reply.
func DecodeAIEMetadata(b []byte) (AIEMetadata, error) {
	var r rawAIEMetadata
	if err := decodeRaw("AIE metadata", b, &r); err != nil {
		return AIEMetadata{}, err
	}
	tile := func(t rawTileMetadata) TileMetadata {
		return TileMetadata{t.RowCount, t.RowStart, t.DMAChannelCount, t.LockCount, t.EventRegCount}
	}
	return AIEMetadata{
		ColumnSize: r.ColSize, Columns: r.Cols, Rows: r.Rows,
		Version: AIEVersion(r.Version),
		Core:    tile(r.Core), Mem: tile(r.Mem), Shim: tile(r.Shim),
	}, nil
}

// DecodeAIEVersion parses a QUERY_AIE_VERSION reply.
func DecodeAIEVersion(b []byte) (AIEVersion, error) {
	var r rawAIEVersion
	err := decodeRaw("AIE version", b, &r)
	return AIEVersion(r), err
}

// DecodeClockMetadata parses a QUERY_CLOCK_METADATA reply.
func DecodeClockMetadata(b []byte) (ClockMetadata, error) {
	var r rawClockMetadata
	if err := decodeRaw("clock metadata", b, &r); err != nil {
		return ClockMetadata{}, err
	}
	return ClockMetadata{
		MPNPU: Clock{cString(r.MPNPU.Name[:]), r.MPNPU.FreqMHz},
		H:     Clock{cString(r.H.Name[:]), r.H.FreqMHz},
	}, nil
}

// DecodeSensors parses a QUERY_SENSORS reply of n bytes: whole sensor entries.
func DecodeSensors(b []byte) ([]Sensor, error) {
	const size = sizeofSensor
	if len(b)%size != 0 {
		return nil, fmt.Errorf("sensors: reply is %d bytes, want a multiple of %d", len(b), size)
	}
	out := make([]Sensor, 0, len(b)/size)
	for off := 0; off < len(b); off += size {
		var r rawSensor
		if err := decodeRaw("sensor", b[off:off+size], &r); err != nil {
			return nil, err
		}
		out = append(out, Sensor{
			Label: cString(r.Label[:]), Input: r.Input, Max: r.Max, Average: r.Average, Highest: r.Highest,
			Status: cString(r.Status[:]), Units: cString(r.Units[:]), UnitM: r.UnitM, Type: r.Type,
		})
	}
	return out, nil
}

// DecodeHWContexts parses a QUERY_HW_CONTEXTS reply: whole struct
// amdxdna_drm_query_hwctx entries.
func DecodeHWContexts(b []byte) ([]HWContext, error) {
	const size = sizeofQueryHWCtx
	if len(b)%size != 0 {
		return nil, fmt.Errorf("hardware contexts: reply is %d bytes, want a multiple of %d", len(b), size)
	}
	out := make([]HWContext, 0, len(b)/size)
	for off := 0; off < len(b); off += size {
		var r rawHWContext
		if err := decodeRaw("hardware context", b[off:off+size], &r); err != nil {
			return nil, err
		}
		out = append(out, HWContext{
			ContextID: r.ContextID, StartColumn: r.StartCol, Columns: r.NumCol, PID: r.PID,
			Submissions: r.CommandSubmissions, Completions: r.CommandCompletions,
			Migrations: r.Migrations, Preemptions: r.Preemptions, Errors: r.Errors,
		})
	}
	return out, nil
}

// DecodeHWContextArray parses n GET_ARRAY HW_CONTEXT_ALL elements of
// elemSize bytes each, the size the kernel reported. An older kernel's shorter
// element leaves the fields it lacks zero; a newer kernel's longer one has its
// tail ignored.
func DecodeHWContextArray(b []byte, elemSize, n uint32) ([]HWContext, error) {
	const size = sizeofHWCtxEntry
	if elemSize == 0 && n > 0 {
		return nil, fmt.Errorf("hardware context array: element size 0 for %d elements", n)
	}
	if uint64(elemSize)*uint64(n) > uint64(len(b)) {
		return nil, fmt.Errorf("hardware context array: %d elements of %d bytes do not fit the %d-byte reply", n, elemSize, len(b))
	}
	out := make([]HWContext, 0, n)
	for i := uint32(0); i < n; i++ {
		elem := make([]byte, size)
		copy(elem, b[int(i*elemSize):int((i+1)*elemSize)])
		var r rawHWContextEntry
		if err := decodeRaw("hardware context entry", elem, &r); err != nil {
			return nil, err
		}
		out = append(out, HWContext{
			ContextID: r.ContextID, StartColumn: r.StartCol, Columns: r.NumCol, HWContextID: r.HWCtxID,
			PID: r.PID, Submissions: r.CommandSubmissions, Completions: r.CommandCompletions,
			Migrations: r.Migrations, Preemptions: r.Preemptions, Errors: r.Errors,
			Priority: r.Priority, HeapUsage: r.HeapUsage, Suspensions: r.Suspensions,
			State: r.State, PASID: r.PASID,
		})
	}
	return out, nil
}

// DecodeFirmwareVersion parses a QUERY_FIRMWARE_VERSION reply.
func DecodeFirmwareVersion(b []byte) (FirmwareVersion, error) {
	var r rawFirmwareVersion
	err := decodeRaw("firmware version", b, &r)
	return FirmwareVersion(r), err
}

// DecodePowerMode parses a GET_POWER_MODE reply.
func DecodePowerMode(b []byte) (PowerMode, error) {
	var r rawPowerMode
	err := decodeRaw("power mode", b, &r)
	return PowerMode(r.Mode), err
}

// DecodeResourceInfo parses a QUERY_RESOURCE_INFO reply.
func DecodeResourceInfo(b []byte) (ResourceInfo, error) {
	var r rawResourceInfo
	if err := decodeRaw("resource info", b, &r); err != nil {
		return ResourceInfo{}, err
	}
	return ResourceInfo{
		MaxClockMHz: r.ClkMax, MaxTOPS: r.TOPSMax, CurrentTOPS: r.TOPSCurr,
		MaxContexts: r.TaskMax, ContextsInUse: r.TaskCurr,
	}, nil
}
