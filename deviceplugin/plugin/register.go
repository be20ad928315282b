package plugin

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// KubeletSocketName is the kubelet's registration socket in the plugin directory.
const KubeletSocketName = "kubelet.sock"

// registerTimeout bounds one Register call (the kubelet dials back within it).
const registerTimeout = 10 * time.Second

// A kubelet creates kubelet.sock a moment before it accepts on it, so the first
// attempts at a new socket may be refused. While a kubelet socket is younger
// than newKubeletWindow (from when the plugin first tried it), failed attempts
// at it are retried at most newKubeletRetry apart: the plugin is back as soon
// as the new kubelet listens, not after the backoff that the kubelet's absence
// built up. Past the window (a stale socket nobody serves) the backoff grows
// as usual.
const (
	newKubeletRetry  = 100 * time.Millisecond
	newKubeletWindow = 10 * time.Second
)

// Triggers of a re-serve/re-register cycle, as logged and counted.
const (
	triggerKubeletRestart = "kubelet-restart" // kubelet.sock created anew
	triggerSocketRemoved  = "socket-removed"  // our socket file is gone
	triggerStreamEnded    = "stream-ended"    // the kubelet hung up ListAndWatch
	triggerDirRemoved     = "plugin-dir-removed"
	triggerRetry          = "retry" // the previous attempt failed

	// triggerRegistered is not a trigger: the registration in flight finished.
	triggerRegistered = "registered"
)

// registration is what the plugin knows of its current registration.
type registration struct {
	done    bool   // registered with the kubelet listening at kubelet
	kubelet fileID // kubelet.sock as it was when Register succeeded
}

// fileID identifies one incarnation of a file: a re-created kubelet.sock differs
// in inode or change time even when the inode number is reused.
type fileID struct {
	dev, ino uint64
	ctime    unix.Timespec
}

// statID returns the identity of path, ok false when it does not exist.
func statID(path string) (fileID, bool) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileID{}, false
	}
	return fileID{dev: st.Dev, ino: st.Ino, ctime: st.Ctim}, true
}

// retryPolicy chooses the wait after a failed registration: exponential from
// min to max, started over for each new kubelet socket and capped at
// newKubeletRetry while that socket is new.
type retryPolicy struct {
	min, max time.Duration
	next     time.Duration // the exponential wait of the next failure
	kubelet  fileID        // the kubelet.sock incarnation last tried; zero: none existed
	since    time.Time     // when the plugin first tried that incarnation
}

// failed returns the wait after an attempt at the kubelet socket incarnation
// kubelet (zero when kubelet.sock did not exist) failed at now.
func (r *retryPolicy) failed(kubelet fileID, now time.Time) time.Duration {
	r.tried(kubelet, now)
	wait := r.next
	r.next = min(2*r.next, r.max)
	if kubelet != (fileID{}) && now.Sub(r.since) < newKubeletWindow {
		wait = min(wait, newKubeletRetry)
	}
	return wait
}

// succeeded notes a registration with kubelet at now: the next failure waits min.
func (r *retryPolicy) succeeded(kubelet fileID, now time.Time) {
	r.tried(kubelet, now)
	r.next = r.min
}

// tried starts the backoff over when kubelet is another socket than the last.
func (r *retryPolicy) tried(kubelet fileID, now time.Time) {
	if kubelet != r.kubelet || r.next == 0 {
		r.kubelet, r.since, r.next = kubelet, now, r.min
	}
}

// server is one serving generation: a gRPC server on its own socket.
type server struct {
	gen  uint64
	sock string
	grpc *grpc.Server
}

// stop ends the server's streams and removes its socket.
func (s *server) stop() {
	if s == nil {
		return
	}
	s.grpc.Stop()
	_ = os.Remove(s.sock)
}

// Run serves the plugin and keeps it registered until ctx is done, then stops
// serving and removes its socket. Each cycle listens on a fresh socket
// "<prefix>-<generation>.sock" (so the kubelet never confuses the new endpoint
// with the one it is still tearing down) and registers it. A new cycle starts
// when kubelet.sock is created anew (kubelet restart), when the plugin's socket
// is removed (kubelet start-up wipes the directory), when the ListAndWatch stream
// ends, or after a backoff when registering failed (see retryPolicy: a new
// kubelet socket starts it over). These triggers also cut short
// a registration in flight: the kubelet's Register blocks while it dials the
// plugin's socket, for up to 10 s if that socket was just removed. Run never
// gives up while the kubelet is away; it returns an error only when it cannot
// watch the directory.
func (p *Plugin) Run(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("%s: watch plugin directory %s: %w", p.opts.ResourceName, p.opts.PluginDir, err)
	}
	defer w.Close()
	ended := make(chan uint64, 64)
	streamEnded := func(gen uint64) {
		select {
		case ended <- gen:
		default: // the loop is behind; a newer trigger is already queued
		}
	}
	p.removeStaleSockets()

	var cur *server
	defer func() {
		cur.stop()
		p.setRegistration(registration{})
	}()
	retries := retryPolicy{min: p.opts.MinBackoff, max: p.opts.MaxBackoff}
	var gen uint64
	for trigger := "start"; ; {
		if trigger != "start" {
			p.log.Info("re-serving and re-registering", "trigger", trigger)
			p.opts.Metrics.Reregistering(p.opts.ResourceName, trigger)
		}
		p.setRegistration(registration{})
		cur.stop()
		gen++
		cur, err = p.serve(w, gen, streamEnded)
		var kubelet fileID // the kubelet.sock tried; zero when none
		if err == nil {
			var interrupted string
			if interrupted, kubelet, err = p.registerWatching(ctx, w, ended, cur); interrupted != "" {
				trigger = interrupted
				continue
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		var retry <-chan time.Time
		if err != nil {
			wait := jitter(retries.failed(kubelet, time.Now()))
			p.log.Warn("not registered with the kubelet; will retry", "in", wait.Round(time.Millisecond), "trigger", trigger, "err", err)
			retry = time.After(wait)
		} else {
			retries.succeeded(kubelet, time.Now())
			p.log.Info("registered with the kubelet", "socket", cur.sock, "trigger", trigger)
		}
		if trigger, _ = p.nextTrigger(ctx, w, ended, retry, nil, cur); trigger == "" {
			return nil
		}
	}
}

// registerWatching registers cur while watching for triggers. It returns the
// trigger that cut it short ("" when none did), the incarnation of kubelet.sock
// it tried (zero when there was none) and the registration's error.
func (p *Plugin) registerWatching(ctx context.Context, w *fsnotify.Watcher, ended <-chan uint64, cur *server) (string, fileID, error) {
	kubeletSock := filepath.Join(p.opts.PluginDir, KubeletSocketName)
	id, ok := statID(kubeletSock)
	if !ok {
		return "", fileID{}, fmt.Errorf("%s does not exist (is the kubelet running?)", kubeletSock)
	}
	p.setRegistration(registration{kubelet: id})
	rctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- p.register(rctx, cur, kubeletSock) }()
	trigger, err := p.nextTrigger(ctx, w, ended, nil, res, cur)
	if trigger == triggerRegistered {
		return "", id, err
	}
	cancel()
	// The registration goroutine is done before the next cycle starts; its error (most
	// often the cancellation) belongs to the abandoned cycle: the next one registers anew.
	if err := <-res; err != nil {
		p.log.Debug("registration cut short", "trigger", trigger, "err", err)
	}
	p.setRegistration(registration{})
	return trigger, id, nil
}

// serve listens on generation gen's socket and starts serving it.
func (p *Plugin) serve(w *fsnotify.Watcher, gen uint64, streamEnded func(uint64)) (*server, error) {
	dir := p.opts.PluginDir
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create plugin directory: %w", err)
	}
	if err := w.Add(dir); err != nil {
		return nil, fmt.Errorf("watch plugin directory %s: %w", dir, err)
	}
	sock := filepath.Join(dir, fmt.Sprintf("%s-%d.sock", p.SocketPrefix(), gen))
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", sock, err)
	}
	s := &server{gen: gen, sock: sock, grpc: grpc.NewServer()}
	pluginapi.RegisterDevicePluginServer(s.grpc, &service{p: p, gen: gen, streamEnded: streamEnded})
	go func() { _ = s.grpc.Serve(ln) }()
	return s, nil
}

// register asks the kubelet listening on kubeletSock to connect to s.
func (p *Plugin) register(ctx context.Context, s *server, kubeletSock string) error {
	conn, err := grpc.NewClient("unix://"+kubeletSock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", kubeletSock, err)
	}
	defer conn.Close()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     filepath.Base(s.sock),
		ResourceName: p.opts.ResourceName,
		Options: &pluginapi.DevicePluginOptions{
			GetPreferredAllocationAvailable: p.opts.ContextsPerNPU > 1,
		},
	})
	if err != nil {
		return fmt.Errorf("register %s at %s: %w", s.sock, kubeletSock, err)
	}
	p.mu.Lock()
	p.reg.done = true
	p.mu.Unlock()
	p.opts.Metrics.RegisteredWithKubelet(p.opts.ResourceName)
	return nil
}

// nextTrigger waits for a reason to start a new cycle and returns it, "" when
// ctx is done, or triggerRegistered and the registration's error when res (if
// not nil) delivers. Events that
// do not concern the current generation are dropped: kubelet.sock created when
// it is the very socket this cycle registers with, removal of a socket that
// still exists or is not ours, streams of replaced servers.
func (p *Plugin) nextTrigger(ctx context.Context, w *fsnotify.Watcher, ended <-chan uint64, retry <-chan time.Time, res <-chan error, cur *server) (string, error) {
	kubeletSock := filepath.Join(p.opts.PluginDir, KubeletSocketName)
	for {
		select {
		case <-ctx.Done():
			return "", nil
		case err := <-res:
			return triggerRegistered, err
		case <-retry:
			return triggerRetry, nil
		case gen := <-ended:
			if cur != nil && gen == cur.gen {
				return triggerStreamEnded, nil
			}
		case err := <-w.Errors:
			p.log.Warn("plugin directory watch error; re-registering to be safe", "err", err)
			return triggerDirRemoved, nil
		case ev := <-w.Events:
			switch {
			case ev.Name == kubeletSock && ev.Has(fsnotify.Create):
				if id, ok := statID(kubeletSock); ok && id == p.registration().kubelet {
					continue // the kubelet this cycle registers (or registered) with
				}
				return triggerKubeletRestart, nil
			case cur != nil && ev.Name == cur.sock && ev.Has(fsnotify.Remove|fsnotify.Rename):
				if _, ok := statID(cur.sock); !ok {
					return triggerSocketRemoved, nil
				}
			case filepath.Clean(ev.Name) == filepath.Clean(p.opts.PluginDir) && ev.Has(fsnotify.Remove|fsnotify.Rename):
				return triggerDirRemoved, nil
			}
		}
	}
}

// removeStaleSockets deletes sockets a previous run of this plugin left behind.
func (p *Plugin) removeStaleSockets() {
	entries, err := os.ReadDir(p.opts.PluginDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if p.ownsSocket(e.Name()) && e.Type()&os.ModeSocket != 0 {
			if err := os.Remove(filepath.Join(p.opts.PluginDir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				p.log.Warn("cannot remove stale socket", "err", err)
			}
		}
	}
}

// ownsSocket reports whether name is one of this plugin's socket names,
// "<prefix>-<n>.sock" (and not, say, the socket of a resource whose name
// extends ours, such as amd.com/npu-xdna2 next to amd.com/npu).
func (p *Plugin) ownsSocket(name string) bool {
	gen, ok := strings.CutPrefix(name, p.SocketPrefix()+"-")
	if !ok {
		return false
	}
	gen, ok = strings.CutSuffix(gen, ".sock")
	_, err := strconv.ParseUint(gen, 10, 64)
	return ok && err == nil
}

func (p *Plugin) setRegistration(r registration) {
	p.mu.Lock()
	p.reg = r
	p.mu.Unlock()
	if !r.done && p.opts.Metrics != nil {
		p.opts.Metrics.Registered.WithLabelValues(p.opts.ResourceName).Set(0)
	}
}

func (p *Plugin) registration() registration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reg
}

// jitter spreads d by ±20% so that plugins on many nodes do not retry in step.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
