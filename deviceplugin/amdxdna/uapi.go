// Package amdxdna speaks the query side of the amdxdna accel driver's UAPI in
// pure Go: DRM_IOCTL_AMDXDNA_GET_INFO (AIE status, metadata and version, clocks,
// sensors, hardware contexts, firmware version, power mode, resource info),
// DRM_IOCTL_AMDXDNA_GET_ARRAY (every hardware context) and the DRM core's
// DRM_IOCTL_VERSION, and an Inventory that asks rarely (each query wakes the NPU
// from runtime power management), caches, and falls back to sysfs when the
// driver refuses a query.
//
// Struct layouts, parameter codes and ioctl numbers come from
// include/uapi/drm/amdxdna_accel.h: Linux 6.14 (torvalds/linux 03c318a0) for
// GET_INFO's first ten parameters, and the header as extended after it
// (intel-lab-lkp/linux 01be546c, identical in AMD's out-of-tree xdna-driver
// 00c56591) for QUERY_RESOURCE_INFO, GET_ARRAY and struct
// amdxdna_drm_hwctx_entry. They are x86-64 layouts, written once here and
// checked against the header's numbers by uapi_test.go.
package amdxdna

import "strconv"

// DRM ioctl encoding (include/uapi/asm-generic/ioctl.h, include/uapi/drm/drm.h):
// _IOC(dir, type, nr, size) = dir<<30 | size<<16 | type<<8 | nr, type 'd'.
const (
	iocWrite   = 1
	iocRead    = 2
	drmType    = 'd'
	drmCmdBase = 0x40 // DRM_COMMAND_BASE: first driver-private ioctl number
)

// iowr is _IOWR(type, nr, size).
func iowr(typ, nr, size uintptr) uintptr {
	return (iocRead|iocWrite)<<30 | size<<16 | typ<<8 | nr
}

// Driver-private ioctl numbers (enum amdxdna_drm_ioctl_id).
const (
	ioctlIDGetInfo  = 7  // DRM_AMDXDNA_GET_INFO
	ioctlIDGetArray = 10 // DRM_AMDXDNA_GET_ARRAY (after 6.14)
	ioctlIDVersion  = 0  // DRM core DRM_IOCTL_VERSION, nr 0x00 (no command base)
)

// Request codes, computed from the struct sizes below.
var (
	// IoctlGetInfo is DRM_IOCTL_AMDXDNA_GET_INFO = DRM_IOWR(0x47, struct amdxdna_drm_get_info).
	IoctlGetInfo = iowr(drmType, drmCmdBase+ioctlIDGetInfo, sizeofGetInfo)
	// IoctlGetArray is DRM_IOCTL_AMDXDNA_GET_ARRAY = DRM_IOWR(0x4a, struct amdxdna_drm_get_array).
	IoctlGetArray = iowr(drmType, drmCmdBase+ioctlIDGetArray, sizeofGetArray)
	// IoctlVersion is DRM_IOCTL_VERSION = DRM_IOWR(0x00, struct drm_version).
	IoctlVersion = iowr(drmType, ioctlIDVersion, sizeofDRMVersion)
)

// Param is a GET_INFO query (enum amdxdna_drm_get_param).
type Param uint32

// GET_INFO parameters. 6 and 7 are unused by the header.
const (
	ParamAIEStatus       Param = 0  // DRM_AMDXDNA_QUERY_AIE_STATUS
	ParamAIEMetadata     Param = 1  // DRM_AMDXDNA_QUERY_AIE_METADATA
	ParamAIEVersion      Param = 2  // DRM_AMDXDNA_QUERY_AIE_VERSION
	ParamClockMetadata   Param = 3  // DRM_AMDXDNA_QUERY_CLOCK_METADATA
	ParamSensors         Param = 4  // DRM_AMDXDNA_QUERY_SENSORS
	ParamHWContexts      Param = 5  // DRM_AMDXDNA_QUERY_HW_CONTEXTS
	ParamFirmwareVersion Param = 8  // DRM_AMDXDNA_QUERY_FIRMWARE_VERSION
	ParamPowerMode       Param = 9  // DRM_AMDXDNA_GET_POWER_MODE
	ParamResourceInfo    Param = 12 // DRM_AMDXDNA_QUERY_RESOURCE_INFO (after 6.14)
)

// String names the parameter as the header does.
func (p Param) String() string {
	switch p {
	case ParamAIEStatus:
		return "QUERY_AIE_STATUS"
	case ParamAIEMetadata:
		return "QUERY_AIE_METADATA"
	case ParamAIEVersion:
		return "QUERY_AIE_VERSION"
	case ParamClockMetadata:
		return "QUERY_CLOCK_METADATA"
	case ParamSensors:
		return "QUERY_SENSORS"
	case ParamHWContexts:
		return "QUERY_HW_CONTEXTS"
	case ParamFirmwareVersion:
		return "QUERY_FIRMWARE_VERSION"
	case ParamPowerMode:
		return "GET_POWER_MODE"
	case ParamResourceInfo:
		return "QUERY_RESOURCE_INFO"
	}
	return "param " + strconv.FormatUint(uint64(p), 10)
}

// ArrayParam is a GET_ARRAY query.
type ArrayParam uint32

// ArrayHWContextAll is DRM_AMDXDNA_HW_CONTEXT_ALL: every hardware context of
// every process (struct amdxdna_drm_hwctx_entry elements).
const ArrayHWContextAll ArrayParam = 0

// The structs below mirror the header field for field, explicit padding
// included, so that Go's layout equals the C layout on x86-64 and
// encoding/binary sees no hidden padding.

// getInfo is struct amdxdna_drm_get_info.
type getInfo struct {
	Param      uint32
	BufferSize uint32 // in: buffer size; out: size written
	Buffer     uint64 // user pointer
}

// getArray is struct amdxdna_drm_get_array.
type getArray struct {
	Param       uint32
	ElementSize uint32 // in: our element size; out: the kernel's
	NumElement  uint32 // in: room; out: elements written
	Pad         uint32
	Buffer      uint64
}

// drmVersion is struct drm_version (include/uapi/drm/drm.h); the lengths are
// __kernel_size_t and the strings user pointers, 8 bytes each on x86-64.
type drmVersion struct {
	Major, Minor, Patch int32
	Pad                 int32 // implicit C padding before name_len, made explicit
	NameLen             uint64
	Name                uint64
	DateLen             uint64
	Date                uint64
	DescLen             uint64
	Desc                uint64
}

// rawAIEVersion is struct amdxdna_drm_query_aie_version.
type rawAIEVersion struct{ Major, Minor uint32 }

// rawTileMetadata is struct amdxdna_drm_query_aie_tile_metadata.
type rawTileMetadata struct {
	RowCount, RowStart, DMAChannelCount, LockCount, EventRegCount uint16
	Pad                                                           [3]uint16
}

// rawAIEMetadata is struct amdxdna_drm_query_aie_metadata.
type rawAIEMetadata struct {
	ColSize         uint32
	Cols, Rows      uint16
	Version         rawAIEVersion
	Core, Mem, Shim rawTileMetadata
}

// rawAIEStatus is struct amdxdna_drm_query_aie_status.
type rawAIEStatus struct {
	Buffer     uint64
	BufferSize uint32
	ColsFilled uint32
}

// rawClock is struct amdxdna_drm_query_clock.
type rawClock struct {
	Name    [16]byte
	FreqMHz uint32
	Pad     uint32
}

// rawClockMetadata is struct amdxdna_drm_query_clock_metadata.
type rawClockMetadata struct{ MPNPU, H rawClock }

// rawSensor is struct amdxdna_drm_query_sensor.
type rawSensor struct {
	Label                        [64]byte
	Input, Max, Average, Highest uint32
	Status                       [64]byte
	Units                        [16]byte
	UnitM                        int8
	Type                         uint8
	Pad                          [6]byte
}

// rawHWContext is struct amdxdna_drm_query_hwctx (QUERY_HW_CONTEXTS).
type rawHWContext struct {
	ContextID, StartCol, NumCol, Pad                                uint32
	PID                                                             int64
	CommandSubmissions, CommandCompletions, Migrations, Preemptions uint64
	Errors                                                          uint64
}

// rawPowerMode is struct amdxdna_drm_get_power_mode.
type rawPowerMode struct {
	Mode uint8
	Pad  [7]uint8
}

// rawFirmwareVersion is struct amdxdna_drm_query_firmware_version.
type rawFirmwareVersion struct{ Major, Minor, Patch, Build uint32 }

// rawResourceInfo is struct amdxdna_drm_get_resource_info.
type rawResourceInfo struct {
	ClkMax, TOPSMax, TaskMax, TOPSCurr, TaskCurr uint64
}

// rawHWContextEntry is struct amdxdna_drm_hwctx_entry (GET_ARRAY HW_CONTEXT_ALL).
type rawHWContextEntry struct {
	ContextID, StartCol, NumCol, HWCtxID                            uint32
	PID                                                             int64
	CommandSubmissions, CommandCompletions, Migrations, Preemptions uint64
	Errors, Priority, HeapUsage, Suspensions                        uint64
	State, PASID, GOPS, FPS, DMABandwidth, Latency, FrameExecTime   uint32
	TxnOpIdx, CtxPC, FatalErrorType, FatalErrorExceptionType        uint32
	FatalErrorExceptionPC, FatalErrorAppModule, Pad                 uint32
}

// Sizes of the request structs (the ioctl numbers encode them).
const (
	sizeofGetInfo    = 16
	sizeofGetArray   = 24
	sizeofDRMVersion = 64
	sizeofSensor     = 168 // struct amdxdna_drm_query_sensor
	sizeofQueryHWCtx = 64  // struct amdxdna_drm_query_hwctx
	sizeofHWCtxEntry = 144 // struct amdxdna_drm_hwctx_entry
)
