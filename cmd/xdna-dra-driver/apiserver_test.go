package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	drapb "k8s.io/kubelet/pkg/apis/dra/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/dra"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/fakehost"
)

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
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

// skipOrFail skips t for reason, or fails it when XDNA_DRA_TEST=required (make test-dra,
// which provides the binaries: a skip there would hide a broken setup).
func skipOrFail(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("XDNA_DRA_TEST") == "required" {
		t.Fatal(reason)
	}
	t.Skip(reason)
}

// TestAgainstAPIServer runs the driver against a real kube-apiserver 1.37 with
// its default feature gates: the published slice must come back with every
// field (allowMultipleAllocations and the contexts request policy are dropped
// when consumable capacity is off), the DeviceClass and a claim asking for 2
// contexts must pass validation, a claim allocated as a share must prepare
// through the DRA socket with the helper reading it from the API server, and
// the unhealthy taint must be kept.
func TestAgainstAPIServer(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		skipOrFail(t, "no KUBEBUILDER_ASSETS: run with KUBEBUILDER_ASSETS=$(hack/k8s-bins.sh kube-apiserver etcd)")
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	node, err := client.CoreV1().Nodes().Create(ctx, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"ml"} {
		if _, err := client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

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
	var logs syncBuffer
	done := make(chan error, 1)
	go func() { done <- serve(ctx, c, client, slog.New(slog.NewTextHandler(&logs, nil))) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()

	var slice resourceapi.ResourceSlice
	eventually(t, "the ResourceSlice on the API server", func() bool {
		l, err := client.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{})
		if err != nil || len(l.Items) != 1 {
			return false
		}
		slice = l.Items[0]
		return true
	})
	dev := slice.Spec.Devices[0]
	if dev.AllowMultipleAllocations == nil || !*dev.AllowMultipleAllocations {
		t.Errorf("allowMultipleAllocations dropped by the API server (DRAConsumableCapacity off?): %+v", dev)
	}
	if p := dev.Capacity[dra.CapacityContexts].RequestPolicy; p == nil || p.ValidRange == nil || p.ValidRange.Max.Value() != 6 {
		t.Errorf("contexts request policy dropped or changed: %+v", dev.Capacity)
	}
	if slice.OwnerReferences[0].UID != node.UID {
		t.Errorf("slice owner %+v, want node %s", slice.OwnerReferences, node.UID)
	}

	if _, err := client.ResourceV1().DeviceClasses().Create(ctx, dra.DeviceClass(dra.DefaultDriverName), metav1.CreateOptions{}); err != nil {
		t.Fatalf("DeviceClass: %v", err)
	}
	claim := &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "enc", Namespace: "ml"},
		Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: []resourceapi.DeviceRequest{{
			Name: "npu", Exactly: &resourceapi.ExactDeviceRequest{
				DeviceClassName: dra.DefaultDriverName, AllocationMode: resourceapi.DeviceAllocationModeExactCount, Count: 1,
				Capacity: &resourceapi.CapacityRequirements{Requests: map[resourceapi.QualifiedName]resource.Quantity{
					dra.CapacityContexts: resource.MustParse("2")}},
				Selectors: []resourceapi.DeviceSelector{{CEL: &resourceapi.CELDeviceSelector{
					Expression: `device.attributes["npu.amd.com"].firmwareVersion == "1.5.2.380"`}}},
			},
		}}}},
	}
	claim, err = client.ResourceV1().ResourceClaims("ml").Create(ctx, claim, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	if claim.Spec.Devices.Requests[0].Exactly.Capacity == nil {
		t.Errorf("the claim's capacity request was dropped by the API server")
	}

	// What kube-scheduler would write: a share of the NPU with 2 contexts.
	share := uuid.NewUUID()
	claim.Status.Allocation = &resourceapi.AllocationResult{Devices: resourceapi.DeviceAllocationResult{
		Results: []resourceapi.DeviceRequestAllocationResult{{
			Request: "npu", Driver: dra.DefaultDriverName, Pool: "node-a", Device: dev.Name, ShareID: &share,
			ConsumedCapacity: map[resourceapi.QualifiedName]resource.Quantity{dra.CapacityContexts: resource.MustParse("2")},
		}},
	}}
	claim.Status.ReservedFor = []resourceapi.ResourceClaimConsumerReference{{Resource: "pods", Name: "p", UID: uuid.NewUUID()}}
	claim, err = client.ResourceV1().ResourceClaims("ml").UpdateStatus(ctx, claim, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("allocate the claim: %v", err)
	}
	plugin := drapb.NewDRAPluginClient(dial(t, filepath.Join(c.pluginDir, "dra.sock")))
	pbClaim := &drapb.Claim{Namespace: "ml", Name: "enc", Uid: string(claim.UID)}
	prep, err := plugin.NodePrepareResources(ctx, &drapb.NodePrepareResourcesRequest{Claims: []*drapb.Claim{pbClaim}})
	if err != nil {
		t.Fatal(err)
	}
	if r := prep.Claims[string(claim.UID)]; r == nil || r.Error != "" || len(r.Devices) != 1 {
		t.Fatalf("prepare: %+v", r)
	}
	unprep, err := plugin.NodeUnprepareResources(ctx, &drapb.NodeUnprepareResourcesRequest{Claims: []*drapb.Claim{pbClaim}})
	if err != nil || unprep.Claims[string(claim.UID)].Error != "" {
		t.Fatalf("unprepare: %+v, %v", unprep, err)
	}
	// Hot-unplug: the NPU stays with a NoSchedule taint, which a 1.37 API
	// server keeps (device taints are GA there).
	h.RemovePCI("0000:c4:00.1", 0)
	eventually(t, "the removed NPU tainted in the slice", func() bool {
		l, err := client.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{})
		if err != nil || len(l.Items) != 1 || len(l.Items[0].Spec.Devices) != 1 {
			return false
		}
		tt := l.Items[0].Spec.Devices[0].Taints
		return len(tt) == 1 && tt[0].Key == "npu.amd.com/unhealthy" && tt[0].Effect == resourceapi.DeviceTaintEffectNoSchedule
	})
	if strings.Contains(logs.String(), "DRA background error") {
		t.Errorf("the ResourceSlice controller reported errors:\n%s", logs.String())
	}
}
