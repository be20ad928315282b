package chart

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	drapb "k8s.io/kubelet/pkg/apis/dra/v1"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/dra"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/fakehost"
)

// draDriverRules: the DRA driver's ClusterRole, what k8s.io/dynamic-resource-allocation's
// kubeletplugin needs (its node's slices, the claims it prepares, its Node as slice owner).
var draDriverRules = permissions(`
resource.k8s.io resourceslices create
resource.k8s.io resourceslices delete
resource.k8s.io resourceslices get
resource.k8s.io resourceslices list
resource.k8s.io resourceslices update
resource.k8s.io resourceslices watch
resource.k8s.io resourceclaims get
 nodes get
`)

// draArgs is the DRA driver's configuration as the chart renders it.
type draArgs struct {
	sysfsRoot, devRoot, hostDevRoot     string
	pluginDir, registrarDir, cdiDir     string
	xdna2                               bool
	fallbackContexts                    int
	unhealthy, rescan, maxAge, logLevel string
}

// parseDRAArgs reads the flags the chart gives xdna-dra-driver; a flag it does not know is an
// error (TestDRADriverFlagsAccepted runs the real binary with them too).
func parseDRAArgs(args []string) (draArgs, error) {
	var a draArgs
	fs := flag.NewFlagSet("xdna-dra-driver", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&a.sysfsRoot, "sysfs-root", "", "")
	fs.StringVar(&a.devRoot, "dev-root", "", "")
	fs.StringVar(&a.hostDevRoot, "host-dev-root", "", "")
	fs.StringVar(&a.pluginDir, "plugin-dir", "", "")
	fs.StringVar(&a.registrarDir, "registrar-dir", "", "")
	fs.StringVar(&a.cdiDir, "cdi-dir", "", "")
	fs.BoolVar(&a.xdna2, "enable-xdna2", false, "")
	fs.IntVar(&a.fallbackContexts, "fallback-contexts", 0, "")
	fs.StringVar(&a.unhealthy, "unhealthy", "", "")
	fs.StringVar(&a.rescan, "rescan-interval", "", "")
	fs.StringVar(&a.maxAge, "inventory-max-age", "", "")
	fs.StringVar(&a.logLevel, "log-level", "", "")
	if err := fs.Parse(args); err != nil {
		return a, err
	}
	if fs.NArg() > 0 {
		return a, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return a, nil
}

// draDriverDaemonSet returns the rendered DRA driver DaemonSet, or nil when it is off.
func draDriverDaemonSet(t *testing.T, r *rendering) *appsv1.DaemonSet {
	t.Helper()
	var found *appsv1.DaemonSet
	for _, o := range r.ofKind("DaemonSet") {
		if isDRADriver(objectID(o)) {
			var d appsv1.DaemonSet
			fromUnstructured(t, o, &d)
			found = &d
		}
	}
	if on := r.value("draDriver.enabled", false) == true; on != (found != nil) {
		t.Fatalf("rendering %s: draDriver.enabled %v, DRA driver DaemonSet rendered: %v", r.name, on, found != nil)
	}
	return found
}

// eachDRADriver runs check, as a subtest, on the DRA driver of every values case that renders one.
func eachDRADriver(t *testing.T, check func(t *testing.T, r *rendering, ds *appsv1.DaemonSet)) {
	t.Helper()
	rendered := 0
	for _, vc := range valuesCases(t) {
		t.Run(vc.name, func(t *testing.T) {
			r := render(t, vc)
			if ds := draDriverDaemonSet(t, r); ds != nil {
				rendered++
				check(t, r, ds)
			}
		})
	}
	if rendered == 0 {
		t.Error("no values case renders the DRA driver (charts/xdna-whisper/ci/dra-values.yaml)")
	}
}

// checkDRADriverMounts compares the DRA driver's host mounts with the paths its rendered
// arguments name: the plugin and registration directories at the same paths as on the node
// (the kubelet dials the socket path the driver registers), the CDI directory, /sys and /dev
// read-only; and it must have its ServiceAccount's token (it writes ResourceSlices).
func checkDRADriverMounts(t *testing.T, r *rendering, id string, spec corev1.PodSpec) {
	t.Helper()
	c := spec.Containers[0]
	a, err := parseDRAArgs(c.Args)
	if err != nil {
		t.Fatalf("%s: rendered arguments %q: %v", id, c.Args, err)
	}
	type mount struct {
		hostPath string
		readOnly bool
	}
	want := map[string]mount{
		a.pluginDir:    {a.pluginDir, false},
		a.registrarDir: {a.registrarDir, false},
		a.cdiDir:       {a.cdiDir, false},
		a.sysfsRoot:    {r.value("draDriver.hostPaths.sys", "/sys").(string), true},
		a.devRoot:      {a.hostDevRoot, true},
	}
	hostPaths := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath == nil {
			t.Errorf("%s: volume %s is not a hostPath", id, v.Name)
			continue
		}
		hostPaths[v.Name] = v.HostPath.Path
	}
	got := map[string]mount{}
	for _, m := range c.VolumeMounts {
		got[m.MountPath] = mount{hostPaths[m.Name], m.ReadOnly}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: mounts (container path → host path, read-only)\n got %v\nwant %v", id, got, want)
	}
	if len(spec.Volumes) != len(c.VolumeMounts) {
		t.Errorf("%s: %d volumes for %d mounts", id, len(spec.Volumes), len(c.VolumeMounts))
	}
	if spec.AutomountServiceAccountToken == nil || !*spec.AutomountServiceAccountToken || spec.ServiceAccountName == "" {
		t.Errorf("%s: the DRA driver publishes ResourceSlices: it needs its ServiceAccount (%q) and token", id, spec.ServiceAccountName)
	}
}

// TestDRADriverArgsFollowValues: the values reach the driver's flags, the kubelet paths derive
// from draDriver.kubeletDir, and NODE_NAME and POD_UID come from the downward API.
func TestDRADriverArgsFollowValues(t *testing.T) {
	needEnv(t)
	eachDRADriver(t, func(t *testing.T, r *rendering, ds *appsv1.DaemonSet) {
		c := ds.Spec.Template.Spec.Containers[0]
		a, err := parseDRAArgs(c.Args)
		if err != nil {
			t.Fatal(err)
		}
		kubelet := r.value("draDriver.kubeletDir", "/var/lib/kubelet").(string)
		got := map[string]any{
			"xdna2.enabled": a.xdna2, "fallbackContexts": float64(a.fallbackContexts), "unhealthy": a.unhealthy,
			"rescanInterval": a.rescan, "inventoryMaxAge": a.maxAge, "logLevel": a.logLevel, "cdiDir": a.cdiDir,
			"hostPaths.dev": a.hostDevRoot,
		}
		defaults := map[string]any{"xdna2.enabled": false, "fallbackContexts": float64(6), "unhealthy": "taint",
			"rescanInterval": "5s", "inventoryMaxAge": "10m", "logLevel": "info", "cdiDir": "/var/run/cdi", "hostPaths.dev": "/dev"}
		for k, def := range defaults {
			if want := r.value("draDriver."+k, def); !reflect.DeepEqual(got[k], want) {
				t.Errorf("draDriver.%s: driver configured %v, values say %v", k, got[k], want)
			}
		}
		if want := kubelet + "/plugins/" + dra.DefaultDriverName; a.pluginDir != want {
			t.Errorf("--plugin-dir %q, want %q (the kubeletplugin's data directory under draDriver.kubeletDir)", a.pluginDir, want)
		}
		if want := kubelet + "/plugins_registry"; a.registrarDir != want {
			t.Errorf("--registrar-dir %q, want %q", a.registrarDir, want)
		}
		env := map[string]string{}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
				env[e.Name] = e.ValueFrom.FieldRef.FieldPath
			}
		}
		if want := map[string]string{"NODE_NAME": "spec.nodeName", "POD_UID": "metadata.uid"}; !reflect.DeepEqual(env, want) {
			t.Errorf("downward API env %v, want %v", env, want)
		}
	})
}

// TestDRADriverPlacement: by default the DRA driver goes to nodes labelled with its NPUs' PCI
// IDs (1502, and 17f0 with XDNA2), and the NodeFeatureRule makes those labels too.
func TestDRADriverPlacement(t *testing.T) {
	needEnv(t)
	eachDRADriver(t, func(t *testing.T, r *rendering, ds *appsv1.DaemonSet) {
		spec := ds.Spec.Template.Spec
		ids := []string{"1502"}
		if r.value("draDriver.xdna2.enabled", false) == true {
			ids = append(ids, "17f0")
		}
		var want []string
		for _, id := range ids {
			want = append(want, "feature.node.kubernetes.io/pci-1180_1022_"+id+".present")
		}
		if custom, _ := r.value("draDriver.affinity", nil).(map[string]any); len(custom) == 0 {
			var got []string
			for _, term := range spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
				got = append(got, term.MatchExpressions[0].Key)
			}
			if !slices.Equal(got, want) {
				t.Errorf("default placement on %q, want any of %q", got, want)
			}
		}
		for _, nfr := range r.ofKind("NodeFeatureRule") {
			raw, _ := json.Marshal(nfr.Object["spec"])
			for _, l := range want {
				if !strings.Contains(string(raw), l) {
					t.Errorf("%s makes no label %s, which the DRA driver's placement needs", objectID(nfr), l)
				}
			}
		}
	})
}

// TestDeviceClassIsTheDriversOne: the chart's DeviceClass is the one deviceplugin/dra builds,
// rendered when the driver is (and draDriver.deviceClass.create is on).
func TestDeviceClassIsTheDriversOne(t *testing.T) {
	needEnv(t)
	want := dra.DeviceClass(dra.DefaultDriverName)
	for _, vc := range valuesCases(t) {
		t.Run(vc.name, func(t *testing.T) {
			r := render(t, vc)
			classes := r.ofKind("DeviceClass")
			on := r.value("draDriver.enabled", false) == true && r.value("draDriver.deviceClass.create", true) != false
			if len(classes) != map[bool]int{true: 1, false: 0}[on] {
				t.Fatalf("%d DeviceClasses rendered, want one only when the DRA driver is on", len(classes))
			}
			for _, o := range classes {
				var got resourceapi.DeviceClass
				fromUnstructured(t, o, &got)
				if got.Name != want.Name || !equality.Semantic.DeepEqual(got.Spec, want.Spec) {
					t.Errorf("DeviceClass %s %+v, want the driver's %s %+v", got.Name, got.Spec, want.Name, want.Spec)
				}
			}
		})
	}
}

// draDriverBinary builds cmd/xdna-dra-driver once per test binary.
func draDriverBinary(t *testing.T) string { return goBuild(t, "./cmd/xdna-dra-driver") }

// TestDRADriverFlagsAccepted runs the real xdna-dra-driver with the arguments every rendering
// gives it (plus --version, which exits after parsing every flag).
func TestDRADriverFlagsAccepted(t *testing.T) {
	needEnv(t)
	eachDRADriver(t, func(t *testing.T, _ *rendering, ds *appsv1.DaemonSet) {
		args := ds.Spec.Template.Spec.Containers[0].Args
		if out, err := exec.Command(draDriverBinary(t), append(slices.Clone(args), "--version")...).CombinedOutput(); err != nil {
			t.Fatalf("xdna-dra-driver %q: %v\n%s", args, err, out)
		}
	})
}

// TestDRADriverRunsWithChartRBAC installs ci/dra-values.yaml for real and runs the
// xdna-dra-driver binary with the rendered arguments (host paths moved to a fake NPU host and
// temporary kubelet directories), authenticated as the chart's DRA driver ServiceAccount: it
// must publish its node's ResourceSlice and prepare a claim (reading it from the API server)
// with exactly the chart's ClusterRole.
func TestDRADriverRunsWithChartRBAC(t *testing.T) {
	needEnv(t)
	vc := valuesCase{name: "install-dra", file: filepath.Join(ciValues, "dra-values.yaml"), namespace: "install-dra"}
	r := render(t, vc)
	admin := newAPIClient(t, restConfig)
	k8s, err := kubernetes.NewForConfig(restConfig)
	must(t, err)
	ensureNamespace(t, admin, r.namespace, privileged)
	for _, o := range r.objects {
		if o.GetKind() == "ServiceAccount" || strings.Contains(o.GetKind(), "Role") || o.GetKind() == "DeviceClass" {
			must(t, admin.apply(o, false))
		}
	}
	ds := draDriverDaemonSet(t, r)
	node, err := k8s.CoreV1().Nodes().Create(bg(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "dra-node"}}, metav1.CreateOptions{})
	must(t, err)
	t.Cleanup(func() { _ = k8s.CoreV1().Nodes().Delete(bg(), node.Name, metav1.DeleteOptions{}) })

	h := fakehost.New(t)
	h.Add(fakehost.NPU{PCI: "0000:c4:00.1", Accel: 0, Firmware: "1.5.2.380"})
	// Short: the socket's name carries the pod UID (rolling updates), and a unix socket path
	// has at most 107 bytes.
	root, err := os.MkdirTemp("", "dra")
	must(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	pluginDir, registrar := filepath.Join(root, "plugins", dra.DefaultDriverName), filepath.Join(root, "plugins_registry")
	must(t, os.MkdirAll(registrar, 0o750))
	args := append(slices.Clone(ds.Spec.Template.Spec.Containers[0].Args),
		"--sysfs-root="+h.Sys, "--dev-root="+h.Dev, "--host-dev-root=/dev", "--plugin-dir="+pluginDir,
		"--registrar-dir="+registrar, "--cdi-dir="+filepath.Join(root, "cdi"),
		"--kubeconfig="+serviceAccountKubeconfig(t, r.namespace, ds.Spec.Template.Spec.ServiceAccountName))
	logs := &logBuffer{}
	cmd := exec.Command(draDriverBinary(t), args...)
	cmd.Env = []string{"NODE_NAME=" + node.Name, "POD_UID=" + string(uuid.NewUUID()), "HOME=" + t.TempDir()}
	cmd.Stdout, cmd.Stderr = logs, logs
	must(t, cmd.Start())
	defer stopOperator(t, cmd, logs)

	var dev resourceapi.Device
	waitFor(t, "the driver's ResourceSlice", func() error {
		l, err := k8s.ResourceV1().ResourceSlices().List(bg(), metav1.ListOptions{FieldSelector: "spec.nodeName=" + node.Name})
		if err != nil || len(l.Items) != 1 || len(l.Items[0].Spec.Devices) != 1 {
			return fmt.Errorf("slices %v, %v; driver log:\n%s", l, err, logs.tail())
		}
		dev = l.Items[0].Spec.Devices[0]
		return nil
	})
	socks, _ := filepath.Glob(filepath.Join(pluginDir, "dra-*.sock"))
	if len(socks) != 1 {
		t.Fatalf("DRA sockets %q in the plugin directory, want one named after the pod UID", socks)
	}
	prepareThroughSocket(t, k8s, socks[0], r.namespace, node.Name, dev.Name)
	if logs.contains("forbidden") {
		t.Errorf("the driver was refused something it asked for:\n%s", logs.tail())
	}
}

// prepareThroughSocket allocates a 2-context claim on device (as kube-scheduler would) and asks
// the driver to prepare and unprepare it over its DRA socket, as the kubelet does.
func prepareThroughSocket(t *testing.T, k8s kubernetes.Interface, socket, ns, nodeName, device string) {
	t.Helper()
	claim := &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "enc", Namespace: ns},
		Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: []resourceapi.DeviceRequest{{
			Name: "npu", Exactly: &resourceapi.ExactDeviceRequest{DeviceClassName: dra.DefaultDriverName,
				AllocationMode: resourceapi.DeviceAllocationModeExactCount, Count: 1,
				Capacity: &resourceapi.CapacityRequirements{Requests: map[resourceapi.QualifiedName]resource.Quantity{
					dra.CapacityContexts: resource.MustParse("2")}}},
		}}}},
	}
	claim, err := k8s.ResourceV1().ResourceClaims(ns).Create(bg(), claim, metav1.CreateOptions{})
	must(t, err)
	share := uuid.NewUUID()
	claim.Status.Allocation = &resourceapi.AllocationResult{Devices: resourceapi.DeviceAllocationResult{
		Results: []resourceapi.DeviceRequestAllocationResult{{
			Request: "npu", Driver: dra.DefaultDriverName, Pool: nodeName, Device: device, ShareID: &share,
			ConsumedCapacity: map[resourceapi.QualifiedName]resource.Quantity{dra.CapacityContexts: resource.MustParse("2")},
		}},
	}}
	claim.Status.ReservedFor = []resourceapi.ResourceClaimConsumerReference{{Resource: "pods", Name: "p", UID: uuid.NewUUID()}}
	claim, err = k8s.ResourceV1().ResourceClaims(ns).UpdateStatus(bg(), claim, metav1.UpdateOptions{})
	must(t, err)
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(t, err)
	defer conn.Close()
	plugin := drapb.NewDRAPluginClient(conn)
	ctx, cancel := context.WithTimeout(bg(), time.Minute)
	defer cancel()
	pb := &drapb.Claim{Namespace: ns, Name: claim.Name, Uid: string(claim.UID)}
	prep, err := plugin.NodePrepareResources(ctx, &drapb.NodePrepareResourcesRequest{Claims: []*drapb.Claim{pb}})
	must(t, err)
	if res := prep.Claims[string(claim.UID)]; res == nil || res.Error != "" || len(res.Devices) != 1 {
		t.Fatalf("prepare with the chart's RBAC: %+v", res)
	}
	unprep, err := plugin.NodeUnprepareResources(ctx, &drapb.NodeUnprepareResourcesRequest{Claims: []*drapb.Claim{pb}})
	if err != nil || unprep.Claims[string(claim.UID)].Error != "" {
		t.Fatalf("unprepare: %+v, %v", unprep, err)
	}
}
