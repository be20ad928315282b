package amdxdna

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// /dev/null is a character device with no ioctls: the real ioctl path must
// report ENOTTY as a refusal, which is what a non-amdxdna node or a kernel
// without the query returns.
func TestRealIoctlOnNonAmdxdnaNodeIsRefused(t *testing.T) {
	d, err := Open("/dev/null")
	if err != nil {
		t.Skipf("cannot open /dev/null read-write: %v", err)
	}
	defer d.Close()
	_, err = QueryFirmwareVersion(d)
	var q *QueryError
	if !errors.As(err, &q) || q.Errno != unix.ENOTTY || !q.Refused() || !IsRefused(err) {
		t.Fatalf("GET_INFO on /dev/null: err = %v, want a refused ENOTTY QueryError", err)
	}
	if !strings.Contains(err.Error(), "GET_INFO QUERY_FIRMWARE_VERSION /dev/null") {
		t.Errorf("error %q does not name the query and the node", err)
	}
	if _, err := QueryHWContextArray(d); !IsRefused(err) {
		t.Errorf("GET_ARRAY on /dev/null: err = %v, want refused", err)
	}
	if _, err := d.AIEStatus(4096); !IsRefused(err) {
		t.Errorf("QUERY_AIE_STATUS on /dev/null: err = %v, want refused", err)
	}
	if _, err := d.AIEStatus(0); err == nil {
		t.Error("QUERY_AIE_STATUS with an empty dump buffer accepted")
	}
	if _, err := d.Version(); !IsRefused(err) {
		t.Errorf("DRM_IOCTL_VERSION on /dev/null: err = %v, want refused", err)
	}
}

func TestOpenMissingNode(t *testing.T) {
	_, err := Open(t.TempDir() + "/accel9")
	var q *QueryError
	if !errors.As(err, &q) || q.Errno != unix.ENOENT || q.Refused() {
		t.Fatalf("err = %v, want an ENOENT QueryError that is not a refusal", err)
	}
}

func TestQueriesThroughQuerier(t *testing.T) {
	f := &fakeDevice{info: map[Param]reply{
		ParamAIEMetadata:     phoenixMetadata(),
		ParamAIEVersion:      reply{}.u32(2).u32(0),
		ParamFirmwareVersion: firmwareReply(1, 5, 2, 380),
		ParamResourceInfo:    resourceReply(1810, 10, 6, 10, 3),
		ParamHWContexts:      reply{}.u32(1).u32(1).u32(4).u32(0).u64(7).u64(0).u64(0).u64(0).u64(0).u64(0),
	}, array: []reply{hwctxEntry(1, 1, 4, 0, 7, 0, 0, 1)}}
	if md, err := QueryAIEMetadata(f); err != nil || md.Columns != 5 || md.Rows != 6 {
		t.Errorf("metadata = %+v, %v", md, err)
	}
	if v, err := QueryAIEVersion(f); err != nil || v.String() != "2.0" {
		t.Errorf("AIE version = %v, %v", v, err)
	}
	if ri, err := QueryResourceInfo(f); err != nil || ri.MaxContexts != 6 || ri.ContextsInUse != 3 {
		t.Errorf("resource info = %+v, %v", ri, err)
	}
	if c, err := QueryHWContexts(f); err != nil || len(c) != 1 || c[0].PID != 7 {
		t.Errorf("hw contexts = %+v, %v", c, err)
	}
	if c, err := QueryHWContextArray(f); err != nil || len(c) != 1 || c[0].State != 1 {
		t.Errorf("hw context array = %+v, %v", c, err)
	}
	if _, err := QueryPowerMode(f); !IsRefused(err) {
		t.Errorf("power mode without a reply: err = %v, want refused (EOPNOTSUPP)", err)
	}
}

// However the kernel reports buffer_size (6.14: all contexts' size; later: the
// space left; sensors: untouched), the entries it wrote are what is counted.
func TestArrayRepliesCountWrittenEntries(t *testing.T) {
	ctx := func(id uint32) reply {
		return reply{}.u32(id).u32(1).u32(1).u32(0).u64(9).u64(0).u64(0).u64(0).u64(0).u64(0)
	}
	power := reply{}.str("Total Power", 64).u32(1234).u32(0).u32(0).u32(0).
		str("", 64).str("mW", 16).u8(0xfd).u8(0).zeros(6)
	for _, reported := range []int{0, 128, 64*64 - 128, 64 * 64} {
		f := &fakeDevice{
			info:      map[Param]reply{ParamHWContexts: append(ctx(1), ctx(2)...), ParamSensors: power},
			reportLen: map[Param]int{ParamHWContexts: reported, ParamSensors: reported},
		}
		c, err := QueryHWContexts(f)
		if err != nil || len(c) != 2 || c[1].ContextID != 2 {
			t.Errorf("buffer_size %d: contexts %+v, %v; want 2", reported, c, err)
		}
		s, err := QuerySensors(f)
		if err != nil || len(s) != 1 || s[0].Input != 1234 {
			t.Errorf("buffer_size %d: sensors %+v, %v; want 1", reported, s, err)
		}
	}
	f := &fakeDevice{info: map[Param]reply{ParamHWContexts: nil}}
	if c, err := QueryHWContexts(f); err != nil || len(c) != 0 {
		t.Errorf("no contexts: %+v, %v", c, err)
	}
}
