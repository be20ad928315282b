package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
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

// TestServeWithoutKubelet runs the daemon with no kubelet: it must keep running
// (no crash loop), report healthy but not ready, expose the NPUs in /metrics,
// write the NFD feature file and the CDI spec, and clean up when stopped.
func TestServeWithoutKubelet(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0, Firmware: "1.5.2.380"})
	h.Add(fakehost.NPU{PCI: "0000:c5:00.1", Accel: 1, Firmware: "1.5.2.380"})
	h.RemoveNode(1)
	dirs := t.TempDir()
	args := []string{
		"--sysfs-root", h.Sys, "--dev-root", h.Dev,
		"--plugin-dir", filepath.Join(dirs, "plugins"),
		"--nfd-features-dir", filepath.Join(dirs, "features.d"),
		"--cdi", "--cdi-dir", filepath.Join(dirs, "cdi"),
		"--metrics-address", "127.0.0.1:0", "--log-format", "text",
	}
	cfgCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr bytes.Buffer
	done := make(chan int)
	ready := make(chan string, 1)
	go func() { done <- runWithReady(cfgCtx, args, &stdout, &stderr, ready) }()
	addr := <-ready

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	eventually(t, func() bool { c, _ := get("/healthz"); return c == 200 })
	if c, body := get("/readyz"); c != 503 || !strings.Contains(body, "amd.com/npu: not registered") {
		t.Errorf("/readyz = %d %q, want 503 naming the unregistered resource", c, body)
	}
	_, m := get("/metrics")
	for _, want := range []string{
		`xdna_device_plugin_devices{family="xdna1"} 2`,
		`xdna_device_plugin_devices_healthy{family="xdna1"} 1`,
		`xdna_device_plugin_registered{resource="amd.com/npu"} 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	features := filepath.Join(dirs, "features.d", "xdna-npu")
	b, err := os.ReadFile(features)
	if err != nil || !strings.Contains(string(b), "amd.com/npu.count=2\n") || !strings.Contains(string(b), "amd.com/npu.firmware=1.5.2.380\n") {
		t.Errorf("NFD feature file %q (%v)", b, err)
	}
	if _, err := os.Stat(filepath.Join(dirs, "cdi", "amd.com-npu.json")); err != nil {
		t.Errorf("CDI spec: %v", err)
	}
	socks, _ := filepath.Glob(filepath.Join(dirs, "plugins", "amd.com_npu-*.sock"))
	if len(socks) != 1 {
		t.Errorf("plugin sockets %q while waiting for the kubelet, want one", socks)
	}

	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d, want 0; log:\n%s", code, stderr.String())
	}
	if _, err := os.Stat(features); !os.IsNotExist(err) {
		t.Errorf("NFD feature file still there after shutdown (%v)", err)
	}
	if socks, _ := filepath.Glob(filepath.Join(dirs, "plugins", "*.sock")); len(socks) != 0 {
		t.Errorf("sockets left after shutdown: %q", socks)
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
