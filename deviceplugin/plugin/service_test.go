package plugin

import (
	"context"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/discovery"
)

// dial serves p's DevicePlugin service on a socket in a temp dir and returns a
// client connected to it.
func dial(t *testing.T, p *Plugin) pluginapi.DevicePluginClient {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "p.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(srv, &service{p: p, gen: 1, streamEnded: func(uint64) {}})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pluginapi.NewDevicePluginClient(conn)
}

func newPlugin(t *testing.T, contexts int, cdi bool) *Plugin {
	t.Helper()
	p, err := New(Options{ResourceName: "amd.com/npu", Family: discovery.XDNA1, PluginDir: t.TempDir(), ContextsPerNPU: contexts, CDI: cdi})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAllocate(t *testing.T) {
	p := newPlugin(t, 2, true)
	p.Update(append(twoNPUs(), npu("0000:c6:00.1", "accel2", 0, false)))
	c := dial(t, p)
	ctx := context.Background()

	resp, err := c.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{
		{DevicesIds: []string{"0000:c5:00.1-1", "0000:c4:00.1-0", "0000:c4:00.1-1"}},
		{DevicesIds: []string{"0000:c5:00.1-0"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ContainerResponses) != 2 {
		t.Fatalf("got %d container responses, want 2", len(resp.ContainerResponses))
	}
	r := resp.ContainerResponses[0]
	var specs []string
	for _, d := range r.Devices {
		specs = append(specs, d.HostPath+"->"+d.ContainerPath+":"+d.Permissions)
	}
	if want := []string{"/dev/accel/accel0->/dev/accel/accel0:rw", "/dev/accel/accel1->/dev/accel/accel1:rw"}; !reflect.DeepEqual(specs, want) {
		t.Errorf("device specs %q, want %q", specs, want)
	}
	wantEnv := map[string]string{EnvDevices: "/dev/accel/accel0,/dev/accel/accel1", EnvPCIAddresses: "0000:c4:00.1,0000:c5:00.1"}
	if !reflect.DeepEqual(r.Envs, wantEnv) {
		t.Errorf("envs %v, want %v", r.Envs, wantEnv)
	}
	var cdi []string
	for _, d := range r.CdiDevices {
		cdi = append(cdi, d.Name)
	}
	if want := []string{"amd.com/npu=0000:c4:00.1", "amd.com/npu=0000:c5:00.1"}; !reflect.DeepEqual(cdi, want) {
		t.Errorf("CDI devices %q, want %q", cdi, want)
	}
	if got := resp.ContainerResponses[1].Envs[EnvDevices]; got != "/dev/accel/accel1" {
		t.Errorf("second container %s=%q, want /dev/accel/accel1", EnvDevices, got)
	}

	for _, bad := range []struct{ ids, want string }{
		{"0000:c6:00.1-0", "unhealthy device IDs: 0000:c6:00.1-0 (device node /dev/accel/accel2: missing)"},
		{"0000:c4:00.1-0 0000:00:00.0-0", "unknown device IDs 0000:00:00.0-0"},
	} {
		_, err := c.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: strings.Fields(bad.ids)}}})
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Allocate(%s): error %v, want one containing %q", bad.ids, err, bad.want)
		}
	}
}

// TestAllocateHostDevRoot: on a node whose /dev the runtime sees elsewhere, the
// runtime is told that path while the container still gets /dev/accel/accelN.
func TestAllocateHostDevRoot(t *testing.T) {
	p, err := New(Options{ResourceName: "amd.com/npu", Family: discovery.XDNA1, PluginDir: t.TempDir(), ContextsPerNPU: 1,
		HostDevRoot: "/var/lib/node/dev"})
	if err != nil {
		t.Fatal(err)
	}
	p.Update(twoNPUs())
	resp, err := dial(t, p).Allocate(context.Background(), &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{
		{DevicesIds: []string{"0000:c5:00.1"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	r := resp.ContainerResponses[0]
	want := []*pluginapi.DeviceSpec{{HostPath: "/var/lib/node/dev/accel/accel1", ContainerPath: "/dev/accel/accel1", Permissions: "rw"}}
	if len(r.Devices) != 1 || r.Devices[0].HostPath != want[0].HostPath || r.Devices[0].ContainerPath != want[0].ContainerPath {
		t.Errorf("device specs %v, want %v", r.Devices, want)
	}
	if got := r.Envs[EnvDevices]; got != "/dev/accel/accel1" {
		t.Errorf("%s=%q, want the container's path /dev/accel/accel1", EnvDevices, got)
	}
}

func TestOptions(t *testing.T) {
	for _, contexts := range []int{1, 3} {
		c := dial(t, newPlugin(t, contexts, false))
		o, err := c.GetDevicePluginOptions(context.Background(), &pluginapi.Empty{})
		if err != nil {
			t.Fatal(err)
		}
		if o.PreStartRequired || o.GetPreferredAllocationAvailable != (contexts > 1) {
			t.Errorf("contexts %d: options %+v", contexts, o)
		}
	}
}

func TestListAndWatchSendsEveryChange(t *testing.T) {
	p := newPlugin(t, 1, false)
	c := dial(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := c.ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	recv := func() string {
		t.Helper()
		r, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, d := range r.Devices {
			parts = append(parts, d.ID+"="+d.Health)
		}
		return strings.Join(parts, " ")
	}
	if got := recv(); got != "" {
		t.Fatalf("first list %q, want empty", got)
	}
	steps := []struct {
		npus []discovery.NPU
		want string
	}{
		{twoNPUs(), "0000:c4:00.1=Healthy 0000:c5:00.1=Healthy"},
		{[]discovery.NPU{npu("0000:c4:00.1", "accel0", 0, false), npu("0000:c5:00.1", "accel1", -1, true)}, "0000:c4:00.1=Unhealthy 0000:c5:00.1=Healthy"},
		{append(twoNPUs(), discovery.NPU{PCIAddress: "0000:c6:00.1", Family: discovery.XDNA2, Healthy: true}), "0000:c4:00.1=Healthy 0000:c5:00.1=Healthy"},
	}
	for i, st := range steps {
		p.Update(st.npus)
		if got := recv(); got != st.want {
			t.Errorf("step %d: got %q, want %q", i, got, st.want)
		}
	}
}

func TestPreferredAllocationRPC(t *testing.T) {
	p := newPlugin(t, 2, false)
	p.Update(twoNPUs())
	c := dial(t, p)
	resp, err := c.GetPreferredAllocation(context.Background(), &pluginapi.PreferredAllocationRequest{
		ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
			AvailableDeviceIDs: []string{"0000:c4:00.1-1", "0000:c5:00.1-0", "0000:c5:00.1-1"},
			AllocationSize:     1,
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.ContainerResponses[0].DeviceIDs; !reflect.DeepEqual(got, []string{"0000:c5:00.1-0"}) {
		t.Errorf("got %q, want the idle NPU's first slot", got)
	}
}
