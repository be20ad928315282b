package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	drapb "k8s.io/kubelet/pkg/apis/dra/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/dra"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/fakehost"
)

// TestSchedulerSharesContexts runs the driver with a real kube-apiserver and
// kube-scheduler 1.37.2 (default feature gates, no kubelet): four pods, each
// with a claim for 2 of the fake Phoenix NPU's 6 contexts; three are bound to
// the node sharing the NPU, the fourth stays Pending with the scheduler's
// reason, and the driver prepares the three allocations the scheduler wrote.
func TestSchedulerSharesContexts(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	scheduler := filepath.Join(assets, "kube-scheduler")
	if _, err := os.Stat(scheduler); assets == "" || err != nil {
		skipOrFail(t, "no kube-scheduler in KUBEBUILDER_ASSETS: run with KUBEBUILDER_ASSETS=$(hack/k8s-bins.sh kube-apiserver etcd kube-scheduler)")
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

	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}
	var schedLog syncBuffer
	sched := exec.Command(scheduler, "--kubeconfig="+kubeconfig, "--leader-elect=false", "--secure-port=0", "-v=2")
	sched.Stdout, sched.Stderr = io.Discard, &schedLog
	if err := sched.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sched.Process.Kill(); _ = sched.Wait() }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kube-scheduler log (tail):\n%s", tail(schedLog.String(), 6000))
		}
	})

	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}
	node, err = client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	room := v1.ResourceList{v1.ResourceCPU: resource.MustParse("8"), v1.ResourceMemory: resource.MustParse("16Gi"), v1.ResourcePods: resource.MustParse("110")}
	node.Status = v1.NodeStatus{Capacity: room, Allocatable: room,
		Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}}
	node, err = client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The TaintNodesByCondition admission plugin tainted it not-ready; with no
	// node lifecycle controller here, lift that as it would for a Ready node.
	node.Spec.Taints = nil
	if _, err := client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ml"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
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
	done := make(chan error, 1)
	go func() { done <- serve(ctx, c, client, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	if _, err := client.ResourceV1().DeviceClasses().Create(ctx, dra.DeviceClass(dra.DefaultDriverName), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	for i := 1; i <= 4; i++ {
		name := fmt.Sprintf("enc-%d", i)
		claim := &resourceapi.ResourceClaim{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ml"},
			Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: []resourceapi.DeviceRequest{{
				Name: "npu", Exactly: &resourceapi.ExactDeviceRequest{
					DeviceClassName: dra.DefaultDriverName,
					Capacity: &resourceapi.CapacityRequirements{Requests: map[resourceapi.QualifiedName]resource.Quantity{
						dra.CapacityContexts: resource.MustParse("2")}},
				},
			}}}},
		}
		if _, err := client.ResourceV1().ResourceClaims("ml").Create(ctx, claim, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pod := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ml"},
			Spec: v1.PodSpec{
				ResourceClaims: []v1.PodResourceClaim{{Name: "npu", ResourceClaimName: ptr.To(name)}},
				Containers: []v1.Container{{Name: "encoder", Image: "registry.test/whisper-encoder:v1",
					Resources: v1.ResourceRequirements{Claims: []v1.ResourceClaim{{Name: "npu"}}}}},
			},
		}
		if _, err := client.CoreV1().Pods("ml").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// One at a time, so which pod waits is known.
		if i <= 3 {
			eventuallyFor(t, 60*time.Second, name+" bound to node-a", func() bool {
				p, err := client.CoreV1().Pods("ml").Get(ctx, name, metav1.GetOptions{})
				return err == nil && p.Spec.NodeName == "node-a"
			})
		}
	}
	var reason string
	eventuallyFor(t, 60*time.Second, "enc-4 unschedulable", func() bool {
		p, err := client.CoreV1().Pods("ml").Get(ctx, "enc-4", metav1.GetOptions{})
		if err != nil || p.Spec.NodeName != "" {
			return false
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == v1.PodScheduled && cond.Status == v1.ConditionFalse && cond.Reason == v1.PodReasonUnschedulable {
				reason = cond.Message
				return true
			}
		}
		return false
	})
	t.Logf("enc-4 Pending: %s", reason)
	if !strings.Contains(reason, "cannot allocate all claims") {
		t.Errorf("enc-4's reason %q does not say the claim cannot be allocated", reason)
	}

	plugin := drapb.NewDRAPluginClient(dial(t, filepath.Join(c.pluginDir, "dra.sock")))
	var pbClaims []*drapb.Claim
	shares := map[string]bool{}
	for i := 1; i <= 3; i++ {
		cl, err := client.ResourceV1().ResourceClaims("ml").Get(ctx, fmt.Sprintf("enc-%d", i), metav1.GetOptions{})
		if err != nil || cl.Status.Allocation == nil {
			t.Fatalf("claim enc-%d not allocated: %v", i, err)
		}
		r := cl.Status.Allocation.Devices.Results[0]
		q := r.ConsumedCapacity[dra.CapacityContexts]
		if r.Device != "npu-0000-c4-00-1" || r.ShareID == nil || q.Value() != 2 {
			t.Errorf("claim enc-%d allocation %+v, want 2 contexts of npu-0000-c4-00-1 as a share", i, r)
		} else {
			shares[string(*r.ShareID)] = true
		}
		pbClaims = append(pbClaims, &drapb.Claim{Namespace: "ml", Name: cl.Name, Uid: string(cl.UID)})
	}
	if len(shares) != 3 {
		t.Errorf("%d distinct shares, want 3", len(shares))
	}
	prep, err := plugin.NodePrepareResources(ctx, &drapb.NodePrepareResourcesRequest{Claims: pbClaims})
	if err != nil {
		t.Fatal(err)
	}
	for _, pc := range pbClaims {
		if r := prep.Claims[pc.Uid]; r == nil || r.Error != "" || len(r.Devices) != 1 {
			t.Errorf("prepare %s: %+v", pc.Name, r)
		}
	}
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// eventuallyFor polls cond every 50 ms until it holds or d passes.
func eventuallyFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
