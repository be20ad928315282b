package kubelet

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/fakehost"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/plugin"
)

// buildPlugin builds cmd/xdna-device-plugin from this checkout (in the main
// module, whose go.sum covers the command's own dependencies).
func buildPlugin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "xdna-device-plugin")
	cmd := exec.Command("go", "build", "-buildvcs=false", "-o", bin, "./cmd/xdna-device-plugin")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build xdna-device-plugin: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a loopback address with a port nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestBinaryEndToEnd runs the real xdna-device-plugin binary, as the DaemonSet
// does, against the kubelet's device manager: registration, allocation, a
// kubelet restart, /readyz and /metrics, then SIGTERM (exit 0, socket and NFD
// file removed, the manager sees the NPUs go unhealthy).
func TestBinaryEndToEnd(t *testing.T) {
	bin := buildPlugin(t)
	dir := socketDir(t)
	k := startKubelet(t, dir)
	h := fakehost.New(t)
	for _, n := range twoNPUs() {
		h.Add(n)
	}
	features := filepath.Join(t.TempDir(), "features.d")
	cdiDir := filepath.Join(t.TempDir(), "cdi")
	addr := freeAddr(t)
	cmd := exec.Command(bin,
		"--sysfs-root", h.Sys, "--dev-root", h.Dev, "--plugin-dir", dir,
		"--nfd-features-dir", features, "--cdi", "--cdi-dir", cdiDir,
		"--metrics-address", addr, "--log-format", "text")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	defer func() {
		if !exited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("plugin logs:\n%s", logs.String())
		}
	}()

	k.waitCounts(npuRes, 2, 2, settleTimeout)
	opts, _, err := k.allocate("e2e", npuRes, 2)
	if err != nil {
		t.Fatal(err)
	}
	checkOptions(t, opts, []string{"/dev/accel/accel0", "/dev/accel/accel1"},
		map[string]string{
			plugin.EnvDevices:      "/dev/accel/accel0,/dev/accel/accel1",
			plugin.EnvPCIAddresses: "0000:c4:00.1,0000:c5:00.1",
		},
		[]string{"amd.com/npu=0000:c4:00.1", "amd.com/npu=0000:c5:00.1"})

	k.stop()
	wipe(t, dir, false)
	k = startKubelet(t, dir)
	defer k.stop()
	k.waitCounts(npuRes, 2, 2, restartTimeout)

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, settleTimeout, "ready plugin", func() bool { c, _ := get("/readyz"); return c == 200 })
	_, metrics := get("/metrics")
	for _, want := range []string{
		`xdna_device_plugin_devices_healthy{family="xdna1"} 2`,
		`xdna_device_plugin_registered{resource="amd.com/npu"} 1`,
		`xdna_device_plugin_allocations_total{resource="amd.com/npu"} 1`,
		`xdna_device_plugin_stream_restarts_total{resource="amd.com/npu"}`,
		`xdna_device_plugin_reregistrations_total{resource="amd.com/npu",trigger=`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(features, "xdna-npu")); err != nil || !strings.Contains(string(b), "amd.com/npu.count=2") {
		t.Errorf("NFD feature file %q (%v)", b, err)
	}
	if _, err := os.Stat(filepath.Join(cdiDir, "amd.com-npu.json")); err != nil {
		t.Errorf("CDI spec: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		exited = true
		if err != nil {
			t.Fatalf("after SIGTERM: %v", err)
		}
	case <-time.After(settleTimeout):
		t.Fatal("still running 10 s after SIGTERM")
	}
	if socks, _ := filepath.Glob(filepath.Join(dir, "amd.com_npu-*.sock")); len(socks) != 0 {
		t.Errorf("plugin sockets left after SIGTERM: %q", socks)
	}
	if _, err := os.Stat(filepath.Join(features, "xdna-npu")); !os.IsNotExist(err) {
		t.Errorf("NFD feature file left after SIGTERM (%v)", err)
	}
	// The kubelet keeps the capacity for its grace period but nothing is allocatable.
	k.waitCounts(npuRes, 2, 0, settleTimeout)
}
