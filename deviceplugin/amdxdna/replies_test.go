package amdxdna

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// reply builds a byte slice field by field in the header's order, little
// endian, the way the kernel's copy_to_user of the C struct lays it out. It is
// independent of the Go mirrors: a field in the wrong place shows up as a
// wrong value.
type reply []byte

func (r reply) u8(v uint8) reply   { return append(r, v) }
func (r reply) u16(v uint16) reply { return binary.LittleEndian.AppendUint16(r, v) }
func (r reply) u32(v uint32) reply { return binary.LittleEndian.AppendUint32(r, v) }
func (r reply) u64(v uint64) reply { return binary.LittleEndian.AppendUint64(r, v) }
func (r reply) zeros(n int) reply  { return append(r, make([]byte, n)...) }

// str appends s NUL-padded to n bytes.
func (r reply) str(s string, n int) reply {
	b := make([]byte, n)
	copy(b, s)
	return append(r, b...)
}

// tile is struct amdxdna_drm_query_aie_tile_metadata.
func (r reply) tile(rows, start, dma, locks, events uint16) reply {
	return r.u16(rows).u16(start).u16(dma).u16(locks).u16(events).zeros(6)
}

// phoenixMetadata is a QUERY_AIE_METADATA reply shaped like npu1's: 5 columns,
// 6 rows (shim row 0, memory row 1, 4 core rows from 2), AIE 2.0.
func phoenixMetadata() reply {
	return reply{}.u32(0x2000000).u16(5).u16(6).u32(2).u32(0).
		tile(4, 2, 2, 16, 128). // core
		tile(1, 1, 6, 64, 128). // mem
		tile(1, 0, 2, 16, 128)  // shim
}

func firmwareReply(major, minor, patch, build uint32) reply {
	return reply{}.u32(major).u32(minor).u32(patch).u32(build)
}

func resourceReply(clk, topsMax, taskMax, topsCur, taskCur uint64) reply {
	return reply{}.u64(clk).u64(topsMax).u64(taskMax).u64(topsCur).u64(taskCur)
}

// hwctxEntry is one struct amdxdna_drm_hwctx_entry.
func hwctxEntry(id, startCol, numCol, hwID uint32, pid int64, subs, comps uint64, state uint32) reply {
	r := reply{}.u32(id).u32(startCol).u32(numCol).u32(hwID).u64(uint64(pid)).
		u64(subs).u64(comps).u64(0).u64(0).u64(0). // migrations, preemptions, errors
		u64(0x200).u64(4096).u64(0)                // priority, heap_usage, suspensions
	r = r.u32(state).u32(7) // state, pasid
	return r.zeros(12 * 4)  // gops … fatal_error_app_module, pad
}

// fakeDevice answers like an amdxdna device whose replies are canned: a
// GET_INFO param maps to its reply bytes or an errno, GET_ARRAY to its elements.
type fakeDevice struct {
	info      map[Param]reply
	infoErr   map[Param]unix.Errno
	array     []reply // GET_ARRAY HW_CONTEXT_ALL elements
	arrayErr  unix.Errno
	version   *DRMVersion
	queries   int // GET_INFO and GET_ARRAY calls: each would wake the NPU
	closed    bool
	reportLen map[Param]int // buffer_size the kernel writes back; len(reply) when absent
}

func (f *fakeDevice) GetInfo(p Param, buf []byte) (int, error) {
	f.queries++
	if e, ok := f.infoErr[p]; ok {
		return 0, &QueryError{Path: "fake", Op: "GET_INFO " + p.String(), Errno: e, Err: e}
	}
	r, ok := f.info[p]
	if !ok {
		return 0, &QueryError{Path: "fake", Op: "GET_INFO " + p.String(), Errno: unix.EOPNOTSUPP, Err: unix.EOPNOTSUPP}
	}
	if len(r) > len(buf) {
		return 0, &QueryError{Path: "fake", Op: "GET_INFO " + p.String(), Errno: unix.EINVAL, Err: unix.EINVAL}
	}
	copy(buf, r)
	if n, ok := f.reportLen[p]; ok {
		return n, nil
	}
	return len(r), nil
}

func (f *fakeDevice) GetArray(p ArrayParam, elemSize uint32, buf []byte) (uint32, uint32, error) {
	f.queries++
	if f.arrayErr != 0 {
		return 0, 0, &QueryError{Path: "fake", Op: "GET_ARRAY", Errno: f.arrayErr, Err: f.arrayErr}
	}
	off := 0
	for _, e := range f.array {
		off += copy(buf[off:], e[:min(len(e), int(elemSize))])
	}
	return elemSize, uint32(len(f.array)), nil
}

func (f *fakeDevice) Version() (DRMVersion, error) {
	if f.version == nil {
		return DRMVersion{}, &QueryError{Path: "fake", Op: "DRM_IOCTL_VERSION", Errno: unix.ENOTTY, Err: unix.ENOTTY}
	}
	return *f.version, nil
}

func (f *fakeDevice) Close() error { f.closed = true; return nil }
