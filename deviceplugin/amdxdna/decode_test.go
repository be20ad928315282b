package amdxdna

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeAIEMetadata(t *testing.T) {
	got, err := DecodeAIEMetadata(phoenixMetadata())
	if err != nil {
		t.Fatal(err)
	}
	want := AIEMetadata{
		ColumnSize: 0x2000000, Columns: 5, Rows: 6, Version: AIEVersion{2, 0},
		Core: TileMetadata{4, 2, 2, 16, 128}, Mem: TileMetadata{1, 1, 6, 64, 128}, Shim: TileMetadata{1, 0, 2, 16, 128},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("metadata (-want +got):\n%s", d)
	}
}

func TestDecodeShortReplyIsAnError(t *testing.T) {
	_, err := DecodeAIEMetadata(phoenixMetadata()[:40])
	if err == nil || !strings.Contains(err.Error(), "reply is 40 bytes, want at least 64") {
		t.Fatalf("err = %v, want the sizes named", err)
	}
	if _, err := DecodeFirmwareVersion(reply{}.u32(1)); err == nil {
		t.Fatal("4-byte firmware reply accepted")
	}
}

func TestDecodeFirmwareResourcePower(t *testing.T) {
	fw, err := DecodeFirmwareVersion(firmwareReply(1, 5, 2, 380))
	if err != nil || fw.String() != "1.5.2.380" {
		t.Fatalf("firmware = %v, %v; want 1.5.2.380", fw, err)
	}
	ri, err := DecodeResourceInfo(resourceReply(1810, 10, 6, 5, 2))
	if err != nil {
		t.Fatal(err)
	}
	if want := (ResourceInfo{MaxClockMHz: 1810, MaxTOPS: 10, MaxContexts: 6, CurrentTOPS: 5, ContextsInUse: 2}); ri != want {
		t.Errorf("resource info = %+v, want %+v", ri, want)
	}
	pm, err := DecodePowerMode(reply{}.u8(3).zeros(7))
	if err != nil || pm != PowerModeHigh || pm.String() != "high" {
		t.Errorf("power mode = %v (%d), %v; want high", pm, pm, err)
	}
	if s := PowerMode(9).String(); s != "unknown(9)" {
		t.Errorf("PowerMode(9) = %q", s)
	}
}

func TestDecodeClockMetadata(t *testing.T) {
	b := reply{}.str("MP-NPU Clock", 16).u32(1267).u32(0).str("H Clock", 16).u32(1800).u32(0)
	got, err := DecodeClockMetadata(b)
	if err != nil {
		t.Fatal(err)
	}
	want := ClockMetadata{MPNPU: Clock{"MP-NPU Clock", 1267}, H: Clock{"H Clock", 1800}}
	if got != want {
		t.Errorf("clocks = %+v, want %+v", got, want)
	}
}

func TestDecodeSensors(t *testing.T) {
	power := reply{}.str("Total Power", 64).u32(1200).u32(0).u32(0).u32(0).
		str("", 64).str("mW", 16).u8(0xfd).u8(0).zeros(6) // unitm -3
	util := reply{}.str("Column 1 Utilization", 64).u32(40).u32(100).u32(0).u32(0).
		str("", 64).str("%", 16).u8(0).u8(1).zeros(6)
	got, err := DecodeSensors(append(power, util...))
	if err != nil {
		t.Fatal(err)
	}
	want := []Sensor{
		{Label: "Total Power", Input: 1200, Units: "mW", UnitM: -3, Type: 0},
		{Label: "Column 1 Utilization", Input: 40, Max: 100, Units: "%", Type: 1},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("sensors (-want +got):\n%s", d)
	}
	if _, err := DecodeSensors(power[:100]); err == nil || !strings.Contains(err.Error(), "multiple of 168") {
		t.Errorf("truncated sensors: err = %v", err)
	}
}

func TestDecodeHWContexts(t *testing.T) {
	one := reply{}.u32(1).u32(1).u32(4).u32(0).u64(4242).u64(10).u64(9).u64(0).u64(1).u64(0)
	got, err := DecodeHWContexts(one)
	if err != nil {
		t.Fatal(err)
	}
	want := []HWContext{{ContextID: 1, StartColumn: 1, Columns: 4, PID: 4242, Submissions: 10, Completions: 9, Preemptions: 1}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("contexts (-want +got):\n%s", d)
	}
	if got, err := DecodeHWContexts(nil); err != nil || len(got) != 0 {
		t.Errorf("empty reply = %v, %v; want none", got, err)
	}
}

func TestDecodeHWContextArray(t *testing.T) {
	a := hwctxEntry(1, 1, 2, 0, 100, 5, 5, 1)
	b := hwctxEntry(2, 3, 2, 1, 200, 7, 6, 0)
	got, err := DecodeHWContextArray(append(a, b...), 144, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []HWContext{
		{ContextID: 1, StartColumn: 1, Columns: 2, HWContextID: 0, PID: 100, Submissions: 5, Completions: 5, Priority: 0x200, HeapUsage: 4096, State: 1, PASID: 7},
		{ContextID: 2, StartColumn: 3, Columns: 2, HWContextID: 1, PID: 200, Submissions: 7, Completions: 6, Priority: 0x200, HeapUsage: 4096, State: 0, PASID: 7},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("contexts (-want +got):\n%s", d)
	}

	// An older kernel's 88-byte element (up to suspensions) decodes with the
	// rest zero.
	short := append(a[:88:88], b[:88]...)
	got, err = DecodeHWContextArray(short, 88, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got[1].PID != 200 || got[1].State != 0 || got[1].PASID != 0 || got[1].Suspensions != 0 {
		t.Errorf("short element decoded as %+v", got[1])
	}
	if _, err := DecodeHWContextArray(a, 144, 2); err == nil || !strings.Contains(err.Error(), "do not fit") {
		t.Errorf("overlong count: err = %v", err)
	}
}
