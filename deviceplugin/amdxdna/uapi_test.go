package amdxdna

import (
	"encoding/binary"
	"testing"
	"unsafe"
)

// The sizes and offsets below are worked out by hand from the C declarations in
// include/uapi/drm/amdxdna_accel.h (Linux 6.14, torvalds/linux 03c318a0; the
// later structs from intel-lab-lkp/linux 01be546c = amd/xdna-driver 00c56591)
// and include/uapi/drm/drm.h, with x86-64 alignment (__u64 and pointers 8).
func TestStructLayoutsMatchHeader(t *testing.T) {
	tests := []struct {
		name       string
		got, want  uintptr
		binarySize int // encoding/binary's packed size: equal to want when no hidden padding
	}{
		// __u32 param, __u32 buffer_size, __u64 buffer
		{"amdxdna_drm_get_info", unsafe.Sizeof(getInfo{}), 16, binary.Size(getInfo{})},
		// __u32 param, element_size, num_element, pad; __u64 buffer
		{"amdxdna_drm_get_array", unsafe.Sizeof(getArray{}), 24, binary.Size(getArray{})},
		// int ×3, (pad 4), size_t name_len, char *name, date_len, date, desc_len, desc
		{"drm_version", unsafe.Sizeof(drmVersion{}), 64, binary.Size(drmVersion{})},
		// __u32 major, minor
		{"amdxdna_drm_query_aie_version", unsafe.Sizeof(rawAIEVersion{}), 8, binary.Size(rawAIEVersion{})},
		// 5 × __u16 + __u16 pad[3]
		{"amdxdna_drm_query_aie_tile_metadata", unsafe.Sizeof(rawTileMetadata{}), 16, binary.Size(rawTileMetadata{})},
		// __u32 col_size, __u16 cols, rows, version 8, 3 × tile 16
		{"amdxdna_drm_query_aie_metadata", unsafe.Sizeof(rawAIEMetadata{}), 64, binary.Size(rawAIEMetadata{})},
		// __u64 buffer, __u32 buffer_size, cols_filled
		{"amdxdna_drm_query_aie_status", unsafe.Sizeof(rawAIEStatus{}), 16, binary.Size(rawAIEStatus{})},
		// __u8 name[16], __u32 freq_mhz, pad
		{"amdxdna_drm_query_clock", unsafe.Sizeof(rawClock{}), 24, binary.Size(rawClock{})},
		{"amdxdna_drm_query_clock_metadata", unsafe.Sizeof(rawClockMetadata{}), 48, binary.Size(rawClockMetadata{})},
		// label 64, 4 × __u32, status 64, units 16, __s8, __u8, pad[6]
		{"amdxdna_drm_query_sensor", unsafe.Sizeof(rawSensor{}), 168, binary.Size(rawSensor{})},
		// 4 × __u32, __s64 pid, 5 × __u64
		{"amdxdna_drm_query_hwctx", unsafe.Sizeof(rawHWContext{}), 64, binary.Size(rawHWContext{})},
		{"amdxdna_drm_get_power_mode", unsafe.Sizeof(rawPowerMode{}), 8, binary.Size(rawPowerMode{})},
		{"amdxdna_drm_query_firmware_version", unsafe.Sizeof(rawFirmwareVersion{}), 16, binary.Size(rawFirmwareVersion{})},
		// 5 × __u64
		{"amdxdna_drm_get_resource_info", unsafe.Sizeof(rawResourceInfo{}), 40, binary.Size(rawResourceInfo{})},
		// 4 × __u32, __s64 pid, 8 × __u64, 14 × __u32
		{"amdxdna_drm_hwctx_entry", unsafe.Sizeof(rawHWContextEntry{}), 144, binary.Size(rawHWContextEntry{})},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("sizeof(struct %s) = %d, header says %d", tc.name, tc.got, tc.want)
		}
		if uintptr(tc.binarySize) != tc.want {
			t.Errorf("struct %s: encoding/binary size %d, want %d (hidden padding in the Go mirror)", tc.name, tc.binarySize, tc.want)
		}
	}
	consts := []struct {
		name      string
		got, want int
	}{
		{"sizeofGetInfo", sizeofGetInfo, 16},
		{"sizeofGetArray", sizeofGetArray, 24},
		{"sizeofDRMVersion", sizeofDRMVersion, 64},
		{"sizeofSensor", sizeofSensor, 168},
		{"sizeofQueryHWCtx", sizeofQueryHWCtx, 64},
		{"sizeofHWCtxEntry", sizeofHWCtxEntry, 144},
	}
	for _, c := range consts {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

func TestFieldOffsetsMatchHeader(t *testing.T) {
	var gi getInfo
	var ga getArray
	var v drmVersion
	var md rawAIEMetadata
	var s rawSensor
	var hc rawHWContext
	var he rawHWContextEntry
	var ri rawResourceInfo
	tests := []struct {
		name      string
		got, want uintptr
	}{
		{"get_info.buffer_size", unsafe.Offsetof(gi.BufferSize), 4},
		{"get_info.buffer", unsafe.Offsetof(gi.Buffer), 8},
		{"get_array.element_size", unsafe.Offsetof(ga.ElementSize), 4},
		{"get_array.num_element", unsafe.Offsetof(ga.NumElement), 8},
		{"get_array.buffer", unsafe.Offsetof(ga.Buffer), 16},
		{"drm_version.name_len", unsafe.Offsetof(v.NameLen), 16},
		{"drm_version.name", unsafe.Offsetof(v.Name), 24},
		{"drm_version.desc", unsafe.Offsetof(v.Desc), 56},
		{"aie_metadata.cols", unsafe.Offsetof(md.Cols), 4},
		{"aie_metadata.rows", unsafe.Offsetof(md.Rows), 6},
		{"aie_metadata.version", unsafe.Offsetof(md.Version), 8},
		{"aie_metadata.core", unsafe.Offsetof(md.Core), 16},
		{"aie_metadata.mem", unsafe.Offsetof(md.Mem), 32},
		{"aie_metadata.shim", unsafe.Offsetof(md.Shim), 48},
		{"sensor.input", unsafe.Offsetof(s.Input), 64},
		{"sensor.status", unsafe.Offsetof(s.Status), 80},
		{"sensor.units", unsafe.Offsetof(s.Units), 144},
		{"sensor.unitm", unsafe.Offsetof(s.UnitM), 160},
		{"sensor.type", unsafe.Offsetof(s.Type), 161},
		{"sensor.pad", unsafe.Offsetof(s.Pad), 162},
		{"query_hwctx.pad", unsafe.Offsetof(hc.Pad), 12},
		{"query_hwctx.pid", unsafe.Offsetof(hc.PID), 16},
		{"query_hwctx.errors", unsafe.Offsetof(hc.Errors), 56},
		{"hwctx_entry.hwctx_id", unsafe.Offsetof(he.HWCtxID), 12},
		{"hwctx_entry.pid", unsafe.Offsetof(he.PID), 16},
		{"hwctx_entry.suspensions", unsafe.Offsetof(he.Suspensions), 80},
		{"hwctx_entry.state", unsafe.Offsetof(he.State), 88},
		{"hwctx_entry.pasid", unsafe.Offsetof(he.PASID), 92},
		{"hwctx_entry.pad", unsafe.Offsetof(he.Pad), 140},
		{"resource_info.npu_task_max", unsafe.Offsetof(ri.TaskMax), 16},
		{"resource_info.npu_task_curr", unsafe.Offsetof(ri.TaskCurr), 32},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("offsetof(%s) = %d, header says %d", tc.name, tc.got, tc.want)
		}
	}
}

// The request numbers as _IOWR('d', nr, size) = 3<<30 | size<<16 | 0x64<<8 | nr.
func TestIoctlNumbersMatchHeader(t *testing.T) {
	tests := []struct {
		name      string
		got, want uintptr
	}{
		// DRM_IOWR(DRM_COMMAND_BASE + DRM_AMDXDNA_GET_INFO (7), 16 bytes)
		{"DRM_IOCTL_AMDXDNA_GET_INFO", IoctlGetInfo, 0xC0106447},
		// DRM_IOWR(DRM_COMMAND_BASE + DRM_AMDXDNA_GET_ARRAY (10), 24 bytes)
		{"DRM_IOCTL_AMDXDNA_GET_ARRAY", IoctlGetArray, 0xC018644A},
		// DRM_IOWR(0x00, struct drm_version, 64 bytes)
		{"DRM_IOCTL_VERSION", IoctlVersion, 0xC0406400},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s = %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
	params := map[Param]uint32{
		ParamAIEStatus: 0, ParamAIEMetadata: 1, ParamAIEVersion: 2, ParamClockMetadata: 3,
		ParamSensors: 4, ParamHWContexts: 5, ParamFirmwareVersion: 8, ParamPowerMode: 9,
		ParamResourceInfo: 12,
	}
	for p, want := range params {
		if uint32(p) != want {
			t.Errorf("%s = %d, header says %d", p, uint32(p), want)
		}
	}
}
