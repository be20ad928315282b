package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestInspect(t *testing.T) {
	t.Setenv("XDNA_TEST_CONTEXTS", "2")
	t.Setenv("XDNA_TEST_EMPTY", "")
	t.Setenv("NOT_XDNA_TEST", "x")
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// Explicit modes: the umask does not apply to chmod.
	if err := errors.Join(os.Chmod(file, 0o640), os.Chmod(dir, 0o750)); err != nil {
		t.Fatal(err)
	}
	// The file's owner and group: distinct IDs when root may chown, else ours.
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	if uid == 0 {
		uid, gid = 1234, 5678
		if err := os.Chown(file, int(uid), int(gid)); err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(dir, "missing")
	var out bytes.Buffer
	if err := inspect(&out, []string{"/dev/null", file, dir, missing}); err != nil {
		t.Fatal(err)
	}
	var got inspection
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output is not an inspection: %v\n%s", err, out.String())
	}
	if got.UID != os.Getuid() || got.Env["XDNA_TEST_CONTEXTS"] != "2" || got.Env["NOT_XDNA_TEST"] != "" {
		t.Errorf("uid %d env %v, want uid %d and XDNA_TEST_CONTEXTS=2 only from the XDNA_ names", got.UID, got.Env, os.Getuid())
	}
	if v, ok := got.Env["XDNA_TEST_EMPTY"]; !ok || v != "" {
		t.Errorf("XDNA_TEST_EMPTY: %q %v, want present and empty", v, ok)
	}
	// /dev/null is c 1:3 on every Linux.
	want := []pathInfo{
		{Path: "/dev/null", Type: "char", Mode: "0666", Major: 1, Minor: 3},
		{Path: file, Type: "file", Mode: "0640", UID: uid, GID: gid},
		{Path: dir, Type: "dir", Mode: "0750", UID: uint32(os.Geteuid()), GID: uint32(os.Getegid())},
	}
	if len(got.Paths) != 4 {
		t.Fatalf("paths %+v, want 4", got.Paths)
	}
	for i, w := range want {
		if got.Paths[i] != w {
			t.Errorf("path %d: %+v, want %+v", i, got.Paths[i], w)
		}
	}
	if p := got.Paths[3]; p.Type != "" || !strings.Contains(p.Error, missing) || !strings.Contains(p.Error, "no such file") {
		t.Errorf("missing path: %+v, want an error naming it", p)
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		t.Fatal(err)
	}
	if got.MemlockSoft != rlimitBytes(lim.Cur) || got.MemlockHard != rlimitBytes(lim.Max) || got.MemlockSoft == 0 {
		t.Errorf("memlock %d/%d, want %d/%d", got.MemlockSoft, got.MemlockHard, rlimitBytes(lim.Cur), rlimitBytes(lim.Max))
	}
}

func TestRlimitBytes(t *testing.T) {
	for in, want := range map[uint64]int64{unix.RLIM_INFINITY: -1, 8 << 20: 8 << 20, 0: 0} {
		if got := rlimitBytes(in); got != want {
			t.Errorf("rlimitBytes(%d) = %d, want %d", in, got, want)
		}
	}
}

func TestEffectiveCap(t *testing.T) {
	const head = "Name:\tagent\nCapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\n"
	for _, c := range []struct {
		status  string
		want    bool
		wantErr string
	}{
		{head + "CapEff:\t00000000a80425fb\nCapBnd:\t0\n", false, ""}, // containerd's default set: no IPC_LOCK
		{head + "CapEff:\t00000000a80465fb\n", true, ""},              // the same plus bit 14
		{head + "CapEff:\t000001ffffffffff\n", true, ""},              // root with every capability
		{head + "CapEff:\t0000000000000000\n", false, ""},
		{head + "CapEff:\tzz\n", false, `CapEff "zz"`},
		{head, false, "no CapEff line"},
	} {
		got, err := effectiveCap(c.status, capIPCLock)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q: err %v, want %q", c.status, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %v, %v; want %v", c.status, got, err, c.want)
		}
	}
}

func TestInspectUsage(t *testing.T) {
	if _, ok := run(context.Background(), []string{"inspect", "-bogus"}).(usageError); !ok {
		t.Error("inspect -bogus: want a usage error")
	}
}
