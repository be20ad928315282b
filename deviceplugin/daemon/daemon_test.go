package daemon

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/cdi"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/config"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/discovery"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/fakehost"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/nfd"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/plugin"
)

// parse builds a configuration from flags, as the command does.
func parse(t *testing.T, args ...string) config.Config {
	t.Helper()
	cfg, _, err := config.Parse("xdna-device-plugin", args)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// start runs the daemon until the test ends and returns its HTTP address and a
// function that stops it and returns Run's error.
func start(t *testing.T, cfg config.Config, log io.Writer) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan string, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(log, nil)), ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("Run returned before listening: %v", err)
	}
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return addr, stop
}

// get fetches path from the daemon's HTTP server.
func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAllowListAndResources(t *testing.T) {
	ids, err := AllowList(config.Defaults())
	if err != nil || len(ids) != 1 || ids[0x1502] != discovery.XDNA1 {
		t.Fatalf("default allow-list %v (%v), want only 0x1502 as xdna1", ids, err)
	}
	if rs := Resources(config.Defaults()); !reflect.DeepEqual(rs, []nfd.Resource{{Name: "amd.com/npu", Family: discovery.XDNA1, ContextsPerNPU: 1}}) {
		t.Errorf("default resources %+v, want amd.com/npu for xdna1 only", rs)
	}

	cfg := parse(t, "--enable-xdna2", "--contexts-per-npu=2", "--device-ids=0x1502,0x1503")
	ids, err = AllowList(cfg)
	want := map[uint16]discovery.Family{0x1502: discovery.XDNA1, 0x1503: discovery.XDNA1, 0x17f0: discovery.XDNA2}
	if err != nil || !reflect.DeepEqual(ids, want) {
		t.Errorf("allow-list with XDNA2 %v (%v), want %v", ids, err, want)
	}
	wantRes := []nfd.Resource{
		{Name: "amd.com/npu", Family: discovery.XDNA1, ContextsPerNPU: 2},
		{Name: "amd.com/npu-xdna2", Family: discovery.XDNA2, ContextsPerNPU: 2},
	}
	if rs := Resources(cfg); !reflect.DeepEqual(rs, wantRes) {
		t.Errorf("resources with XDNA2 %+v, want %+v", rs, wantRes)
	}
}

// TestPolicies: the policy names the configuration accepts are the plugin's.
func TestPolicies(t *testing.T) {
	if plugin.Policy(config.PolicySpread) != plugin.Spread || plugin.Policy(config.PolicyPack) != plugin.Pack {
		t.Errorf("config policies %q and %q, plugin policies %q and %q", config.PolicySpread, config.PolicyPack, plugin.Spread, plugin.Pack)
	}
}

// TestRunWithoutKubelet runs the daemon with no kubelet: it must keep running
// (no crash loop), report healthy but not ready, expose the NPUs in /metrics,
// write the NFD feature file and the CDI spec, and clean up when stopped.
func TestRunWithoutKubelet(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0, Firmware: "1.5.2.380"})
	h.Add(fakehost.NPU{PCI: "0000:c5:00.1", Accel: 1, Firmware: "1.5.2.380"})
	h.RemoveNode(1)
	dirs := t.TempDir()
	cfg := parse(t,
		"--sysfs-root", h.Sys, "--dev-root", h.Dev,
		"--plugin-dir", filepath.Join(dirs, "plugins"),
		"--nfd-features-dir", filepath.Join(dirs, "features.d"),
		"--cdi", "--cdi-dir", filepath.Join(dirs, "cdi"),
		"--metrics-address", "127.0.0.1:0",
	)
	var logs bytes.Buffer
	addr, stop := start(t, cfg, &logs)

	eventually(t, "healthy /healthz", func() bool { c, _ := get(t, addr, "/healthz"); return c == 200 })
	if c, body := get(t, addr, "/readyz"); c != 503 || !strings.Contains(body, "amd.com/npu: not registered") {
		t.Errorf("/readyz = %d %q, want 503 naming the unregistered resource", c, body)
	}
	_, m := get(t, addr, "/metrics")
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

	if err := stop(); err != nil {
		t.Fatalf("Run: %v; log:\n%s", err, logs.String())
	}
	if _, err := os.Stat(features); !os.IsNotExist(err) {
		t.Errorf("NFD feature file still there after shutdown (%v)", err)
	}
	if socks, _ := filepath.Glob(filepath.Join(dirs, "plugins", "*.sock")); len(socks) != 0 {
		t.Errorf("sockets left after shutdown: %q", socks)
	}
}

// registrar is a kubelet's registration service that accepts every request.
type registrar struct {
	pluginapi.UnimplementedRegistrationServer
	mu        sync.Mutex
	resources []string
}

func (r *registrar) Register(_ context.Context, req *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	r.mu.Lock()
	r.resources = append(r.resources, req.ResourceName)
	r.mu.Unlock()
	return &pluginapi.Empty{}, nil
}

func (r *registrar) registered() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]string(nil), r.resources...)
	sort.Strings(out)
	return out
}

// TestRunFansOut: with XDNA2 enabled the daemon runs one plugin per resource,
// each registers with the kubelet, /readyz turns ok once both have, and each
// resource gets its own CDI spec with its family's NPUs.
func TestRunFansOut(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0})
	h.Add(fakehost.NPU{PCI: "0000:c5:00.1", Accel: 1, Device: 0x17f0})
	dirs := t.TempDir()
	plugins := filepath.Join(dirs, "plugins")
	if err := os.MkdirAll(plugins, 0o750); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(plugins, "kubelet.sock"))
	if err != nil {
		t.Fatal(err)
	}
	kubelet := &registrar{}
	srv := grpc.NewServer()
	pluginapi.RegisterRegistrationServer(srv, kubelet)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)

	cfg := parse(t, "--enable-xdna2", "--sysfs-root", h.Sys, "--dev-root", h.Dev, "--plugin-dir", plugins,
		"--nfd=false", "--cdi", "--cdi-dir", filepath.Join(dirs, "cdi"), "--metrics-address", "127.0.0.1:0",
		"--health-interval", "100ms")
	var logs bytes.Buffer
	addr, stop := start(t, cfg, &logs)
	eventually(t, "ready /readyz", func() bool { c, _ := get(t, addr, "/readyz"); return c == 200 })
	if got, want := kubelet.registered(), []string{"amd.com/npu", "amd.com/npu-xdna2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("registered %q, want %q", got, want)
	}
	// The specs are written on the first scan, which registration does not wait for.
	for spec, pci := range map[string]string{"amd.com-npu.json": "0000:c4:00.1", "amd.com-npu-xdna2.json": "0000:c5:00.1"} {
		path := filepath.Join(dirs, "cdi", spec)
		eventually(t, "CDI spec "+spec, func() bool { _, err := os.Stat(path); return err == nil })
		b, err := os.ReadFile(path)
		if err != nil || strings.Count(string(b), `"name":`) != 1 || !strings.Contains(string(b), `"name": "`+pci+`"`) ||
			!strings.Contains(string(b), `"fileMode": 384`) {
			t.Errorf("CDI spec %s: want only %s, mode 0600 (384) as on the host; got %s (%v)", spec, pci, b, err)
		}
	}
	// A mode the host node gets later (a udev rule, say) reaches the spec by
	// the periodic rescan (chmod sends no event the monitor watches).
	h.Chmod(0, 0o660)
	eventually(t, "CDI spec amd.com-npu.json with mode 0660 (432)", func() bool {
		b, err := os.ReadFile(filepath.Join(dirs, "cdi", "amd.com-npu.json"))
		return err == nil && strings.Contains(string(b), `"fileMode": 432`)
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v; log:\n%s", err, logs.String())
	}
}

// TestSpecKey: two specs of the same host compare equal (their nodes' pointers
// differ), and a change of the host node's mode makes them differ, so the
// daemon rewrites the spec exactly when its content changes.
func TestSpecKey(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0})
	npus := []discovery.NPU{{PCIAddress: "0000:c4:00.1", DevicePath: "/dev/accel/accel0", Healthy: true}}
	build := func() string {
		t.Helper()
		s, err := cdi.Build("amd.com/npu", h.Dev, "", npus)
		if err != nil {
			t.Fatal(err)
		}
		return specKey(s)
	}
	first := build()
	if again := build(); again != first {
		t.Errorf("same host, keys differ:\n%s\n%s", first, again)
	}
	h.Chmod(0, 0o660)
	if changed := build(); changed == first {
		t.Errorf("mode changed to 0660, key unchanged: %s", changed)
	}
}
