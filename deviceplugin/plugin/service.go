package plugin

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// service is the DevicePlugin gRPC service of one serving generation; when its
// ListAndWatch stream ends it tells the Run loop which generation it belonged to,
// so a stream of an already replaced server triggers nothing.
type service struct {
	pluginapi.UnimplementedDevicePluginServer
	p           *Plugin
	gen         uint64
	streamEnded func(gen uint64)
}

// GetDevicePluginOptions says that GetPreferredAllocation is worth calling when
// NPUs are shared, and that PreStartContainer is not needed.
func (s *service) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{
		PreStartRequired:                false,
		GetPreferredAllocationAvailable: s.p.opts.ContextsPerNPU > 1,
	}, nil
}

// ListAndWatch sends the full device list now and after every change, until the
// kubelet hangs up or the server stops.
func (s *service) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	p := s.p
	p.mu.Lock()
	p.streams++
	restarted := p.streams > 1
	p.mu.Unlock()
	if restarted {
		p.opts.Metrics.StreamRestarted(p.opts.ResourceName)
	}
	defer s.streamEnded(s.gen)
	for {
		inv, changed := p.snapshot()
		if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: inv.apiDevices()}); err != nil {
			p.log.Warn("ListAndWatch send failed", "err", err)
			return err
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		}
	}
}

// GetPreferredAllocation proposes slots by the configured policy.
func (s *service) GetPreferredAllocation(_ context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	inv, _ := s.p.snapshot()
	resp := &pluginapi.PreferredAllocationResponse{}
	for _, cr := range req.ContainerRequests {
		ids := inv.prefer(s.p.opts.Policy, cr.AvailableDeviceIDs, cr.MustIncludeDeviceIDs, int(cr.AllocationSize))
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerPreferredAllocationResponse{DeviceIDs: ids})
	}
	return resp, nil
}

// Allocate returns, per container, the NPUs' device nodes (read-write, at
// /dev/accel/accelN inside, from Options.HostDevRoot on the node), XDNA_DEVICES
// and XDNA_PCI_ADDRESSES, and CDI names when enabled.
// Unknown or unhealthy IDs fail the whole request with an error naming them.
func (s *service) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	p := s.p
	inv, _ := p.snapshot()
	resp := &pluginapi.AllocateResponse{}
	for _, cr := range req.ContainerRequests {
		npus, err := inv.resolve(p.opts.ResourceName, cr.DevicesIds)
		p.opts.Metrics.Allocated(p.opts.ResourceName, err == nil)
		if err != nil {
			p.log.Warn("allocation refused", "ids", cr.DevicesIds, "err", err)
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		car := &pluginapi.ContainerAllocateResponse{Envs: map[string]string{}}
		var paths, addrs []string
		for _, n := range npus {
			car.Devices = append(car.Devices, &pluginapi.DeviceSpec{
				ContainerPath: n.DevicePath, HostPath: n.HostPath(p.opts.HostDevRoot), Permissions: "rw",
			})
			if p.opts.CDI {
				car.CdiDevices = append(car.CdiDevices, &pluginapi.CDIDevice{Name: p.opts.ResourceName + "=" + n.PCIAddress})
			}
			paths = append(paths, n.DevicePath)
			addrs = append(addrs, n.PCIAddress)
		}
		car.Envs[EnvDevices] = strings.Join(paths, ",")
		car.Envs[EnvPCIAddresses] = strings.Join(addrs, ",")
		p.log.Info("allocated", "ids", cr.DevicesIds, "devices", paths)
		resp.ContainerResponses = append(resp.ContainerResponses, car)
	}
	return resp, nil
}

// PreStartContainer is not required (GetDevicePluginOptions says so); it succeeds.
func (s *service) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}
