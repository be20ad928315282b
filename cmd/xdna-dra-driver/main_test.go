package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	drapb "k8s.io/kubelet/pkg/apis/dra/v1"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/cdi"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/dra"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/fakehost"
)

func TestParse(t *testing.T) {
	t.Setenv("NODE_NAME", "")
	tests := []struct {
		args []string
		want string
	}{
		{nil, "--node-name (or $NODE_NAME) is required"},
		{[]string{"--node-name=n", "--unhealthy=ignore"}, `--unhealthy "ignore": want remove or taint`},
		{[]string{"--node-name=n", "--fallback-contexts=0"}, "--fallback-contexts 0: want at least 1"},
		{[]string{"--node-name=n", "extra"}, `unexpected arguments ["extra"]`},
	}
	for _, tc := range tests {
		if _, err := parse(tc.args, io.Discard); err == nil || err.Error() != tc.want {
			t.Errorf("parse(%q) = %v, want %q", tc.args, err, tc.want)
		}
	}
	t.Setenv("NODE_NAME", "node-a")
	c, err := parse(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.nodeName != "node-a" || c.pluginDir != "/var/lib/kubelet/plugins/npu.amd.com" ||
		c.registrarDir != "/var/lib/kubelet/plugins_registry" || c.cdiDir != "/var/run/cdi" {
		t.Errorf("defaults %+v", c)
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"--version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), program) {
		t.Errorf("--version: code %d, out %q", code, out.String())
	}
	if code := run(context.Background(), []string{"--bogus"}, &out, &errOut); code != 2 {
		t.Errorf("bad flag: code %d, want 2", code)
	}
}

// eventually polls cond every 20 ms until it holds or 20 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The whole driver against a fake API server: it registers with the kubelet's
// registration protocol, publishes the NPU's ResourceSlice, and prepares and
// unprepares a claim over the DRA gRPC socket the kubelet uses.
func TestServeAgainstKubeletProtocol(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0, Firmware: "1.5.2.380"})
	root := t.TempDir()
	c := config{
		driverName: dra.DefaultDriverName, nodeName: "node-a", sysfsRoot: h.Sys, devRoot: h.Dev,
		cdiDir: filepath.Join(root, "cdi"), pluginDir: filepath.Join(root, "plugins", "npu"),
		registrarDir: filepath.Join(root, "registry"), fallbackContexts: 6,
		unhealthy: "remove", rescan: time.Hour, inventoryMaxAge: time.Hour,
	}
	if err := os.MkdirAll(c.registrarDir, 0o755); err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", UID: "node-uid"}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, c, client, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()

	var slice resourceapi.ResourceSlice
	eventually(t, "the ResourceSlice", func() bool {
		l, err := client.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{})
		if err != nil || len(l.Items) != 1 {
			return false
		}
		slice = l.Items[0]
		return true
	})
	if s := slice.Spec; s.Driver != "npu.amd.com" || s.Pool.Name != "node-a" || *s.NodeName != "node-a" ||
		len(s.Devices) != 1 || s.Devices[0].Name != "npu-0000-c4-00-1" {
		t.Fatalf("slice spec %+v", s)
	}
	if len(slice.OwnerReferences) != 1 || slice.OwnerReferences[0].Kind != "Node" || slice.OwnerReferences[0].UID != "node-uid" {
		t.Errorf("slice owner %+v, want the Node", slice.OwnerReferences)
	}

	// Registration, as the kubelet's plugin watcher does it.
	reg := dial(t, filepath.Join(c.registrarDir, "npu.amd.com-reg.sock"))
	info, err := registerapi.NewRegistrationClient(reg).GetInfo(ctx, &registerapi.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != registerapi.DRAPlugin || info.Name != "npu.amd.com" || info.Endpoint != filepath.Join(c.pluginDir, "dra.sock") {
		t.Errorf("registration info %+v", info)
	}

	// A claim the scheduler allocated: 2 contexts of the NPU, as a share.
	share := types.UID("share-1")
	claim := &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "enc", Namespace: "ml", UID: "claim-uid"},
		Status: resourceapi.ResourceClaimStatus{Allocation: &resourceapi.AllocationResult{
			Devices: resourceapi.DeviceAllocationResult{Results: []resourceapi.DeviceRequestAllocationResult{{
				Request: "npu", Driver: "npu.amd.com", Pool: "node-a", Device: "npu-0000-c4-00-1", ShareID: &share,
				ConsumedCapacity: map[resourceapi.QualifiedName]resource.Quantity{"contexts": resource.MustParse("2")},
			}}},
		}},
	}
	if _, err := client.ResourceV1().ResourceClaims("ml").Create(ctx, claim, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	plugin := drapb.NewDRAPluginClient(dial(t, info.Endpoint))
	pbClaim := &drapb.Claim{Namespace: "ml", Name: "enc", Uid: "claim-uid"}
	prep, err := plugin.NodePrepareResources(ctx, &drapb.NodePrepareResourcesRequest{Claims: []*drapb.Claim{pbClaim}})
	if err != nil {
		t.Fatal(err)
	}
	r := prep.Claims["claim-uid"]
	if r == nil || r.Error != "" || len(r.Devices) != 1 ||
		r.Devices[0].CdiDeviceIds[0] != "npu.amd.com/npu=claim-uid-0-npu-0000-c4-00-1" {
		t.Fatalf("prepare response %+v", r)
	}
	spec := filepath.Join(c.cdiDir, "npu.amd.com-claim-claim-uid.json")
	var s cdi.Spec
	b, err := os.ReadFile(spec)
	if err != nil || json.Unmarshal(b, &s) != nil || s.Devices[0].ContainerEdits.DeviceNodes[0].Path != "/dev/accel/accel0" {
		t.Fatalf("CDI spec %s: %v %s", spec, err, b)
	}
	if _, err := os.Stat(filepath.Join(c.pluginDir, dra.CheckpointFile)); err != nil {
		t.Errorf("no checkpoint: %v", err)
	}

	unprep, err := plugin.NodeUnprepareResources(ctx, &drapb.NodeUnprepareResourcesRequest{Claims: []*drapb.Claim{pbClaim}})
	if err != nil || unprep.Claims["claim-uid"] == nil || unprep.Claims["claim-uid"].Error != "" {
		t.Fatalf("unprepare: %+v, %v", unprep, err)
	}
	if _, err := os.Stat(spec); !os.IsNotExist(err) {
		t.Errorf("CDI spec left after unprepare: %v", err)
	}

	// Hot-unplug: the slice loses the device.
	h.RemovePCI("0000:c4:00.1", 0)
	eventually(t, "the slice without the removed NPU", func() bool {
		l, err := client.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{})
		return err == nil && len(l.Items) == 1 && len(l.Items[0].Spec.Devices) == 0
	})
}

func dial(t *testing.T, socket string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// A claim prepared by one driver process is unprepared by the next one (the
// DaemonSet pod restarted between the pod's start and its end).
func TestServeRestartKeepsPreparedClaims(t *testing.T) {
	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0, Firmware: "1.5.2.380"})
	root := t.TempDir()
	c := config{
		driverName: dra.DefaultDriverName, nodeName: "node-a", sysfsRoot: h.Sys, devRoot: h.Dev,
		cdiDir: filepath.Join(root, "cdi"), pluginDir: filepath.Join(root, "plugins", "npu"),
		registrarDir: filepath.Join(root, "registry"), fallbackContexts: 6,
		unhealthy: "taint", rescan: time.Hour, inventoryMaxAge: time.Hour,
	}
	if err := os.MkdirAll(c.registrarDir, 0o755); err != nil {
		t.Fatal(err)
	}
	share := types.UID("share-1")
	claim := &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "enc", Namespace: "ml", UID: "claim-uid"},
		Status: resourceapi.ResourceClaimStatus{Allocation: &resourceapi.AllocationResult{
			Devices: resourceapi.DeviceAllocationResult{Results: []resourceapi.DeviceRequestAllocationResult{{
				Request: "npu", Driver: "npu.amd.com", Pool: "node-a", Device: "npu-0000-c4-00-1", ShareID: &share,
				ConsumedCapacity: map[resourceapi.QualifiedName]resource.Quantity{"contexts": resource.MustParse("2")},
			}}},
		}},
	}
	client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", UID: "node-uid"}}, claim)
	pbClaim := &drapb.Claim{Namespace: "ml", Name: "enc", Uid: "claim-uid"}
	spec := filepath.Join(c.cdiDir, "npu.amd.com-claim-claim-uid.json")
	start := func() (drapb.DRAPluginClient, func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- serve(ctx, c, client, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
		socket := filepath.Join(c.pluginDir, "dra.sock")
		eventually(t, "the DRA socket", func() bool { _, err := os.Stat(socket); return err == nil })
		return drapb.NewDRAPluginClient(dial(t, socket)), func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		}
	}

	first, stop := start()
	eventually(t, "prepare by the first process", func() bool {
		r, err := first.NodePrepareResources(context.Background(), &drapb.NodePrepareResourcesRequest{Claims: []*drapb.Claim{pbClaim}})
		return err == nil && r.Claims["claim-uid"] != nil && r.Claims["claim-uid"].Error == ""
	})
	stop()
	if _, err := os.Stat(spec); err != nil {
		t.Fatalf("CDI spec gone with the process: %v", err)
	}

	second, stop := start()
	defer stop()
	var r *drapb.NodeUnprepareResourcesResponse
	eventually(t, "unprepare by the second process", func() bool {
		var err error
		r, err = second.NodeUnprepareResources(context.Background(), &drapb.NodeUnprepareResourcesRequest{Claims: []*drapb.Claim{pbClaim}})
		return err == nil
	})
	if e := r.Claims["claim-uid"]; e == nil || e.Error != "" {
		t.Fatalf("unprepare: %+v", r)
	}
	if _, err := os.Stat(spec); !os.IsNotExist(err) {
		t.Errorf("CDI spec left: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(c.pluginDir, dra.CheckpointFile))
	if err != nil || strings.Contains(string(b), "claim-uid") {
		t.Errorf("checkpoint after unprepare: %s, %v", b, err)
	}
}
