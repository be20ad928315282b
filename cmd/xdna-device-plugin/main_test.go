package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/fakehost"
)

// TestMain lets the test binary act as the real program (for the SIGTERM test).
func TestMain(m *testing.M) {
	if os.Getenv("XDNA_DEVICE_PLUGIN_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

func TestFlagsAndVersion(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"--version"}, 0, "xdna-device-plugin dev (commit", ""},
		{[]string{"--contexts-per-npu=7"}, 2, "", "contextsPerNPU 7: an XDNA1 NPU has 6 hardware contexts"},
		{[]string{"--no-such-flag"}, 2, "", "flag provided but not defined: -no-such-flag"},
		{[]string{"--config=/nonexistent.yaml"}, 2, "", "config file: open /nonexistent.yaml: no such file or directory"},
	}
	for _, tc := range tests {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d, stdout containing %q, stderr containing %q",
				tc.args, code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
		}
	}
}

// TestSIGTERM runs the program as a process and stops it with SIGTERM.
func TestSIGTERM(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0})
	dirs := t.TempDir()
	cmd := exec.Command(os.Args[0], "--sysfs-root", h.Sys, "--dev-root", h.Dev,
		"--plugin-dir", filepath.Join(dirs, "plugins"), "--nfd-features-dir", filepath.Join(dirs, "features.d"),
		"--metrics-address", "")
	cmd.Env = append(os.Environ(), "XDNA_DEVICE_PLUGIN_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	features := filepath.Join(dirs, "features.d", "xdna-npu")
	eventually(t, func() bool { _, err := os.Stat(features); return err == nil })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v; log:\n%s", err, stderr.String())
	}
	if _, err := os.Stat(features); !os.IsNotExist(err) {
		t.Errorf("NFD feature file still there after SIGTERM (%v)", err)
	}
	if socks, _ := filepath.Glob(filepath.Join(dirs, "plugins", "*.sock")); len(socks) != 0 {
		t.Errorf("sockets left after SIGTERM: %q", socks)
	}
	if !strings.Contains(stderr.String(), `"msg":"stopped cleanly"`) {
		t.Errorf("log lacks the clean stop:\n%s", stderr.String())
	}
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
