// Package deviceplugin is the root of the xdna-device-plugin: a Kubernetes device
// plugin that advertises AMD XDNA NPUs (/dev/accel/accelN, driver amdxdna) to the
// kubelet.
//
// Its subpackages, in the order data flows through them:
//
//   - discovery: finds NPUs in sysfs/devfs and tracks their health, watching with
//     fsnotify and on a period.
//   - plugin: the kubelet device-plugin gRPC server (ListAndWatch, Allocate,
//     GetPreferredAllocation), registration and re-registration.
//   - cdi: the CDI spec file naming each NPU for CDI-aware runtimes.
//   - nfd: the Node Feature Discovery feature file that labels the node.
//   - metrics: the Prometheus collectors.
//   - config: the configuration (defaults, YAML file, validation); a leaf that
//     imports nothing of ours.
//   - daemon: runs it all from a configuration: the Monitor's NPU lists fan out
//     to one plugin per resource, the metrics, the CDI spec and the NFD file;
//     /metrics, /healthz and /readyz. cmd/xdna-device-plugin only parses flags
//     and calls daemon.Run.
package deviceplugin
