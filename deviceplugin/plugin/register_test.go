package plugin

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/discovery"
)

// stubKubelet is the kubelet's registration service on <dir>/kubelet.sock as a
// device plugin meets it: Register dials the plugin's endpoint back in the same
// directory and follows its ListAndWatch stream, as the kubelet's device manager
// does. Its socket can exist before it listens (bound, not yet listening: what a
// plugin sees of a kubelet that has just created its socket), and stop ends the
// plugin's streams and removes the socket, as a kubelet that exits does.
type stubKubelet struct {
	pluginapi.UnimplementedRegistrationServer
	t    *testing.T
	sock string
	fd   int

	mu      sync.Mutex
	srv     *grpc.Server
	reqs    []*pluginapi.RegisterRequest
	conns   []*grpc.ClientConn
	devices []string // IDs of the last ListAndWatch response
}

// bindKubelet creates <dir>/kubelet.sock, bound but not listening: connecting
// to it is refused.
func bindKubelet(t *testing.T, dir string) *stubKubelet {
	t.Helper()
	k := &stubKubelet{t: t, sock: filepath.Join(dir, KubeletSocketName)}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: k.sock}); err != nil {
		unix.Close(fd)
		t.Fatalf("bind %s: %v", k.sock, err)
	}
	k.fd = fd
	t.Cleanup(k.stop)
	return k
}

// startKubelet creates <dir>/kubelet.sock and serves registrations on it.
func startKubelet(t *testing.T, dir string) *stubKubelet {
	t.Helper()
	k := bindKubelet(t, dir)
	k.listen()
	return k
}

// listen starts accepting registrations on the bound socket.
func (k *stubKubelet) listen() {
	k.t.Helper()
	if err := unix.Listen(k.fd, 16); err != nil {
		k.t.Fatal(err)
	}
	f := os.NewFile(uintptr(k.fd), k.sock)
	ln, err := net.FileListener(f) // a duplicate of the descriptor
	f.Close()
	k.fd = -1
	if err != nil {
		k.t.Fatal(err)
	}
	srv := grpc.NewServer()
	pluginapi.RegisterRegistrationServer(srv, k)
	k.mu.Lock()
	k.srv = srv
	k.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// stop closes the socket, hangs up on the plugin and removes kubelet.sock.
func (k *stubKubelet) stop() {
	k.mu.Lock()
	srv, conns := k.srv, k.conns
	k.srv, k.conns = nil, nil
	k.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
	if k.fd >= 0 {
		unix.Close(k.fd)
		k.fd = -1
	}
	for _, c := range conns {
		c.Close()
	}
	_ = os.Remove(k.sock)
}

// Register records the request and connects to the plugin's endpoint.
func (k *stubKubelet) Register(_ context.Context, req *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	if req.Version != pluginapi.Version {
		return nil, fmt.Errorf("version %q, want %q", req.Version, pluginapi.Version)
	}
	endpoint := filepath.Join(filepath.Dir(k.sock), req.Endpoint)
	conn, err := grpc.NewClient("unix://"+endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	stream, err := pluginapi.NewDevicePluginClient(conn).ListAndWatch(context.Background(), &pluginapi.Empty{})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ListAndWatch on %s: %w", endpoint, err)
	}
	k.mu.Lock()
	k.reqs = append(k.reqs, req)
	k.conns = append(k.conns, conn)
	k.mu.Unlock()
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			var ids []string
			for _, d := range resp.Devices {
				ids = append(ids, d.ID+":"+d.Health)
			}
			sort.Strings(ids)
			k.mu.Lock()
			k.devices = ids
			k.mu.Unlock()
		}
	}()
	return &pluginapi.Empty{}, nil
}

// registrations returns the requests received so far.
func (k *stubKubelet) registrations() []*pluginapi.RegisterRequest {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]*pluginapi.RegisterRequest(nil), k.reqs...)
}

// lastDevices returns the device list of the last ListAndWatch response.
func (k *stubKubelet) lastDevices() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.devices
}

// retryLog records the plugin's "will retry" log lines: the wait it chose and
// the error it gave.
type retryLog struct {
	mu      sync.Mutex
	retries []retryRecord
}

type retryRecord struct {
	wait time.Duration
	err  string
}

func (l *retryLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *retryLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *retryLog) WithGroup(string) slog.Handler            { return l }
func (l *retryLog) Handle(_ context.Context, r slog.Record) error {
	if !strings.HasPrefix(r.Message, "not registered with the kubelet") {
		return nil
	}
	var rec retryRecord
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "in":
			rec.wait = a.Value.Duration()
		case "err":
			rec.err = a.Value.String()
		}
		return true
	})
	l.mu.Lock()
	l.retries = append(l.retries, rec)
	l.mu.Unlock()
	return nil
}

// String lists the waits and errors recorded, for failure messages.
func (l *retryLog) String() string {
	var b strings.Builder
	for _, r := range l.since(0) {
		fmt.Fprintf(&b, "\n  retry in %v after: %s", r.wait, r.err)
	}
	return b.String()
}

// since returns the records from index i on.
func (l *retryLog) since(i int) []retryRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i > len(l.retries) {
		return nil
	}
	return append([]retryRecord(nil), l.retries[i:]...)
}

// runPlugin runs p until the test ends and checks that Run returns cleanly.
func runPlugin(t *testing.T, p *Plugin) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// within polls cond every millisecond until it holds, failing after timeout.
func within(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRegisterWithStubKubelet: the plugin registers with the kubelet socket it
// finds, with the API version, its resource and an endpoint in the same
// directory that serves ListAndWatch; it is not registered again while nothing
// changes; stopping it removes its socket.
func TestRegisterWithStubKubelet(t *testing.T) {
	dir := t.TempDir()
	k := startKubelet(t, dir)
	p, err := New(Options{ResourceName: "amd.com/npu", Family: discovery.XDNA1, PluginDir: dir, ContextsPerNPU: 2})
	if err != nil {
		t.Fatal(err)
	}
	p.Update(twoNPUs())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	within(t, 10*time.Second, "registration", func() bool { return len(k.registrations()) > 0 && p.Registered() })
	req := k.registrations()[0]
	if req.ResourceName != "amd.com/npu" || !p.ownsSocket(req.Endpoint) || !req.Options.GetPreferredAllocationAvailable {
		t.Errorf("registered %+v: want resource amd.com/npu, an endpoint named %s-<n>.sock, GetPreferredAllocation offered (2 contexts per NPU)",
			req, p.SocketPrefix())
	}
	want := []string{"0000:c4:00.1-0:Healthy", "0000:c4:00.1-1:Healthy", "0000:c5:00.1-0:Healthy", "0000:c5:00.1-1:Healthy"}
	within(t, 10*time.Second, "device list", func() bool { return reflect.DeepEqual(k.lastDevices(), want) })
	if n := len(k.registrations()); n != 1 {
		t.Errorf("%d registrations with one kubelet, want 1", n)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if socks, _ := filepath.Glob(filepath.Join(dir, p.SocketPrefix()+"-*.sock")); len(socks) != 0 {
		t.Errorf("sockets left after Run returned: %q", socks)
	}
}

// TestNewKubeletSocketRetriedPromptly is the kubelet restart that used to cost a
// full backoff (issue 13): the kubelet goes away long enough for the backoff to
// grow past a second, then its new socket appears before the kubelet listens
// on it, so the first attempts are refused. A new kubelet socket must start the
// backoff over and be retried at short intervals until it accepts.
func TestNewKubeletSocketRetriedPromptly(t *testing.T) {
	dir := t.TempDir()
	retries := &retryLog{}
	p, err := New(Options{ResourceName: "amd.com/npu", Family: discovery.XDNA1, PluginDir: dir, ContextsPerNPU: 1,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 5 * time.Second, Log: slog.New(retries)})
	if err != nil {
		t.Fatal(err)
	}
	p.Update(twoNPUs())
	old := startKubelet(t, dir)
	runPlugin(t, p)
	want := []string{"0000:c4:00.1:Healthy", "0000:c5:00.1:Healthy"}
	within(t, 10*time.Second, "registration with the first kubelet and its device list", func() bool {
		return p.Registered() && reflect.DeepEqual(old.lastDevices(), want)
	})

	// The kubelet exits (its stream to the plugin ends); while it is away the
	// waits grow.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the plugin's retries:%s", retries)
		}
	})
	old.stop()
	within(t, 10*time.Second, "a retry wait of a second or more", func() bool {
		for _, r := range retries.since(0) {
			if r.wait >= time.Second {
				return true
			}
		}
		return false
	})

	// Its successor creates kubelet.sock but does not listen yet.
	mark := len(retries.since(0))
	k := bindKubelet(t, dir)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the plugin's retries:%s", retries)
		}
	})
	maxWait := time.Duration(float64(newKubeletRetry) * 1.2) // jitter is ±20%
	var refused []retryRecord
	within(t, 10*time.Second, "two refused attempts at the new kubelet socket", func() bool {
		refused = refused[:0]
		for _, r := range retries.since(mark) {
			if strings.Contains(r.err, "connection refused") {
				refused = append(refused, r)
			}
		}
		return len(refused) >= 2 || (len(refused) == 1 && refused[0].wait > maxWait)
	})
	for i, r := range refused {
		if r.wait > maxWait {
			t.Fatalf("refused attempt %d at a new kubelet socket: retry in %v, want at most %v (%v ±20%%): %s",
				i+1, r.wait, maxWait, newKubeletRetry, r.err)
		}
	}

	// It listens: the plugin registers with it and the kubelet gets the devices.
	k.listen()
	within(t, 10*time.Second, "registration with the new kubelet", func() bool { return len(k.registrations()) > 0 && p.Registered() })
	within(t, 10*time.Second, "device list at the new kubelet", func() bool { return reflect.DeepEqual(k.lastDevices(), want) })
}

// TestRetryPolicy walks the waits after failed registrations through a kubelet
// that is away, comes back with a socket it does not yet accept on, serves, and
// then leaves a stale socket behind before its successor appears.
func TestRetryPolicy(t *testing.T) {
	const ms = time.Millisecond
	t0 := time.Unix(1000, 0)
	a, b := fileID{dev: 1, ino: 10}, fileID{dev: 1, ino: 11}
	r := retryPolicy{min: 50 * ms, max: 5 * time.Second}
	steps := []struct {
		name    string
		kubelet fileID // zero: kubelet.sock absent
		at      time.Duration
		ok      bool
		want    time.Duration // wait after a failure
	}{
		{"no kubelet socket", fileID{}, 0, false, 50 * ms},
		{"still none", fileID{}, time.Second, false, 100 * ms},
		{"still none", fileID{}, 2 * time.Second, false, 200 * ms},
		{"still none", fileID{}, 3 * time.Second, false, 400 * ms},
		{"still none", fileID{}, 4 * time.Second, false, 800 * ms},
		{"still none", fileID{}, 5 * time.Second, false, 1600 * ms},
		{"still none", fileID{}, 6 * time.Second, false, 3200 * ms},
		{"still none: at most max", fileID{}, 7 * time.Second, false, 5 * time.Second},
		{"new socket a refused: start over", a, 8 * time.Second, false, 50 * ms},
		{"a refused again", a, 8*time.Second + 50*ms, false, 100 * ms},
		{"a refused again: capped while new", a, 8*time.Second + 150*ms, false, newKubeletRetry},
		{"a refused again: capped while new", a, 8*time.Second + 250*ms, false, newKubeletRetry},
		{"a refused past the window: backoff grows", a, 8*time.Second + newKubeletWindow, false, 800 * ms},
		{"a accepts", a, 20 * time.Second, true, 0},
		{"a stale (kubelet gone, socket left)", a, 60 * time.Second, false, 50 * ms},
		{"a stale", a, 61 * time.Second, false, 100 * ms},
		{"a stale", a, 62 * time.Second, false, 200 * ms},
		{"new socket b refused: start over", b, 63 * time.Second, false, 50 * ms},
		{"b refused again: capped while new", b, 63*time.Second + 150*ms, false, 100 * ms},
		{"b refused again: capped while new", b, 63*time.Second + 250*ms, false, 100 * ms},
	}
	for i, st := range steps {
		now := t0.Add(st.at)
		if st.ok {
			r.succeeded(st.kubelet, now)
			continue
		}
		if got := r.failed(st.kubelet, now); got != st.want {
			t.Errorf("step %d (%s): wait %v, want %v", i, st.name, got, st.want)
		}
	}
}
