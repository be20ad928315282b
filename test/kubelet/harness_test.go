// Package kubelet tests xdna-device-plugin against the kubelet's own device
// manager (k8s.io/kubernetes/pkg/kubelet/cm/devicemanager), run in-process on a
// socket directory in a temp dir, with NPUs on a fake sysfs/devfs (real character
// devices, so the tests run as root, as CI does).
//
// The manager is built with the package's unexported constructor newManagerImpl,
// reached with //go:linkname, because the exported NewManagerImpl hard-codes
// /var/lib/kubelet/device-plugins/kubelet.sock: that would collide with a real
// kubelet on the machine and with tests running in parallel. If a Kubernetes
// release renames or changes that function, this fails at link or compile time
// (not silently); the fallback is NewManagerImpl, run as root in a private mount
// namespace with a tmpfs on /var/lib/kubelet/device-plugins.
package kubelet

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"
	_ "unsafe" // for go:linkname

	"github.com/go-logr/logr"
	cadvisorapi "github.com/google/cadvisor/lib/model"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/kubelet/cm/containermap"
	"k8s.io/kubernetes/pkg/kubelet/cm/devicemanager"
	"k8s.io/kubernetes/pkg/kubelet/cm/topologymanager"
	"k8s.io/kubernetes/pkg/kubelet/lifecycle"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/discovery"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/fakehost"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/plugin"
)

//go:linkname newManagerImpl k8s.io/kubernetes/pkg/kubelet/cm/devicemanager.newManagerImpl
func newManagerImpl(logger klog.Logger, socketPath string, topology []cadvisorapi.Node, topologyAffinityStore topologymanager.Store) (*devicemanager.ManagerImpl, error)

func init() {
	// The manager logs every registration and update at level 0; keep test
	// output to our own figures.
	klog.SetLogger(logr.Discard())
}

// kubelet is the device-manager part of a kubelet on one node.
type kubelet struct {
	t    *testing.T
	dir  string
	m    *devicemanager.ManagerImpl
	mu   sync.Mutex
	pods []*v1.Pod
}

// startKubelet starts a device manager listening on <dir>/kubelet.sock, with the
// topology manager's default "none" policy on a one-NUMA-node machine, as a
// kubelet with default settings does. Start wipes the directory's sockets.
func startKubelet(t *testing.T, dir string) *kubelet {
	t.Helper()
	logger := klog.Background()
	topo := []cadvisorapi.Node{{Id: 0}}
	tm, err := topologymanager.NewManager(logger, topo, topologymanager.PolicyNone, "container", nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := newManagerImpl(logger, filepath.Join(dir, "kubelet.sock"), topo, tm)
	if err != nil {
		t.Fatal(err)
	}
	k := &kubelet{t: t, dir: dir, m: m}
	if err := m.Start(logger, k.activePods, allReady{}, containermap.NewContainerMap(), sets.New[string]()); err != nil {
		t.Fatal(err)
	}
	return k
}

// stop stops the manager's registration server and disconnects the plugins.
func (k *kubelet) stop() {
	if err := k.m.Stop(klog.Background()); err != nil {
		k.t.Fatal(err)
	}
}

func (k *kubelet) activePods() []*v1.Pod {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]*v1.Pod(nil), k.pods...)
}

// setPods replaces the pods the kubelet considers active; allocations of pods
// that are no longer active are released on the next allocation.
func (k *kubelet) setPods(pods ...*v1.Pod) {
	k.mu.Lock()
	k.pods = pods
	k.mu.Unlock()
}

// counts is what the node status would say of resource: capacity (healthy and
// unhealthy devices) and allocatable (healthy devices).
func (k *kubelet) counts(res string) (capacity, allocatable int64) {
	c, a, _ := k.m.GetCapacity(klog.Background())
	if q, ok := c[v1.ResourceName(res)]; ok {
		capacity = q.Value()
	}
	if q, ok := a[v1.ResourceName(res)]; ok {
		allocatable = q.Value()
	}
	return capacity, allocatable
}

// waitCounts polls until the manager reports capacity and allocatable for res,
// and returns how long that took; it fails the test after timeout.
func (k *kubelet) waitCounts(res string, capacity, allocatable int64, timeout time.Duration) time.Duration {
	k.t.Helper()
	start := time.Now()
	for {
		c, a := k.counts(res)
		if c == capacity && a == allocatable {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			k.t.Fatalf("%s: capacity %d allocatable %d after %v, want %d and %d", res, c, a, timeout, capacity, allocatable)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// allocate admits a pod whose single container asks for n of res, as the
// kubelet does before starting it, and returns the container's run options.
func (k *kubelet) allocate(name, res string, n int64) (*devicemanager.DeviceRunContainerOptions, time.Duration, error) {
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: v1.PodSpec{Containers: []v1.Container{{
			Name: "encoder",
			Resources: v1.ResourceRequirements{
				Limits:   v1.ResourceList{v1.ResourceName(res): *resource.NewQuantity(n, resource.DecimalSI)},
				Requests: v1.ResourceList{v1.ResourceName(res): *resource.NewQuantity(n, resource.DecimalSI)},
			},
		}}},
	}
	k.mu.Lock()
	k.pods = append(k.pods, pod)
	k.mu.Unlock()
	ctx := context.Background()
	start := time.Now()
	if err := k.m.Allocate(ctx, pod, &pod.Spec.Containers[0], lifecycle.AddOperation); err != nil {
		return nil, 0, err
	}
	took := time.Since(start)
	opts, err := k.m.GetDeviceRunContainerOptions(ctx, pod, &pod.Spec.Containers[0])
	return opts, took, err
}

// allReady says every pod source is ready, so the manager releases the devices
// of pods that are no longer active.
type allReady struct{}

func (allReady) AddSource(string) {}
func (allReady) AllReady() bool   { return true }

// node is a fake host running the plugin the way cmd/xdna-device-plugin wires
// it: a discovery Monitor feeding one Plugin per resource.
type node struct {
	host    *fakehost.Host
	dir     string
	plugins []*plugin.Plugin
	logs    *syncBuffer
	cancel  context.CancelFunc
	done    sync.WaitGroup
}

// nodeConfig configures startNode.
type nodeConfig struct {
	npus     []fakehost.NPU
	contexts int
	policy   plugin.Policy
	cdi      bool
	xdna2    bool
}

// startNode builds the fake host, then runs the Monitor (events only: the period
// is an hour, so every change the tests see travelled through fsnotify) and the
// plugins until the test ends. The plugin's logs are printed if the test fails.
func startNode(t *testing.T, dir string, cfg nodeConfig) *node {
	t.Helper()
	if cfg.contexts == 0 {
		cfg.contexts = 1
	}
	n := &node{host: fakehost.New(t), dir: dir, logs: &syncBuffer{}}
	for _, npu := range cfg.npus {
		n.host.Add(npu)
	}
	log := slog.New(slog.NewTextHandler(n.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ids := map[uint16]discovery.Family{0x1502: discovery.XDNA1}
	resources := map[discovery.Family]string{discovery.XDNA1: "amd.com/npu"}
	if cfg.xdna2 {
		ids[0x17f0] = discovery.XDNA2
		resources[discovery.XDNA2] = "amd.com/npu-xdna2"
	}
	for _, fam := range []discovery.Family{discovery.XDNA1, discovery.XDNA2} {
		res, ok := resources[fam]
		if !ok {
			continue
		}
		p, err := plugin.New(plugin.Options{
			ResourceName: res, Family: fam, PluginDir: dir, ContextsPerNPU: cfg.contexts,
			Policy: cfg.policy, CDI: cfg.cdi, Log: log,
		})
		if err != nil {
			t.Fatal(err)
		}
		n.plugins = append(n.plugins, p)
	}
	mon := &discovery.Monitor{
		Scanner:  discovery.Scanner{SysfsRoot: n.host.Sys, DevRoot: n.host.Dev, DeviceIDs: ids},
		Interval: time.Hour,
		Log:      log,
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.done.Add(1 + len(n.plugins))
	go func() {
		defer n.done.Done()
		if err := mon.Run(ctx, func(npus []discovery.NPU) {
			for _, p := range n.plugins {
				p.Update(npus)
			}
		}); err != nil {
			t.Error(err)
		}
	}()
	for _, p := range n.plugins {
		go func() {
			defer n.done.Done()
			if err := p.Run(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			t.Logf("plugin logs:\n%s", n.logs.String())
		}
	})
	return n
}

// stop ends the plugins (they remove their sockets) and the Monitor.
func (n *node) stop() {
	n.cancel()
	n.done.Wait()
}

// syncBuffer is a bytes.Buffer safe for the plugin goroutines' logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// socketDir makes the kubelet's device-plugin directory. It is removed after
// everything else the test started (cleanups run last-in first-out), retrying
// because the manager's client goroutines may still be writing its checkpoint
// there after Stop.
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "device-plugins-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 100 {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("could not remove %s", dir)
	})
	return dir
}

// wipe removes everything in dir (whole=false) or dir itself (whole=true).
func wipe(t *testing.T, dir string, whole bool) {
	t.Helper()
	if whole {
		// The plugin re-creates its socket as soon as it sees it go, so the
		// removal can race with it: retry until the directory is gone.
		var err error
		for range 100 {
			if err = os.RemoveAll(dir); err == nil {
				return
			}
		}
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

// stats summarises latencies as "median M, max X over N".
func stats(d []time.Duration) string {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return fmt.Sprintf("median %v, max %v over %d", round(med), round(s[len(s)-1]), len(s))
}

func round(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(10 * time.Microsecond)
}
