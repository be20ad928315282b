package dra

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/cdi"
	"github.com/xdna-whisper/xdna-whisper/deviceplugin/plugin"
)

// Environment set in containers of prepared claims, besides the device
// plugin's XDNA_DEVICES and XDNA_PCI_ADDRESSES.
const (
	// EnvContexts is the number of hardware contexts the claim was granted
	// (summed over its NPUs). The NPU does not enforce it: it is the share the
	// scheduler accounted for, for the application to honour.
	EnvContexts = "XDNA_CONTEXTS"
	// EnvMemlockBytes is the locked memory XRT pins per process. CDI cannot
	// raise RLIMIT_MEMLOCK: the pod needs CAP_IPC_LOCK or a runtime memlock
	// limit at least this large, or XRT reports "No devices".
	EnvMemlockBytes = "XDNA_MEMLOCK_BYTES"
	// MemlockBytes is XRT's per-process pinned memory, 64 MiB.
	MemlockBytes = 64 << 20
)

// cdiKind is the CDI kind of prepared claims' devices, e.g. "npu.amd.com/npu".
func (d *Driver) cdiKind() string { return d.opts.DriverName + "/npu" }

// specPrefix starts the file name of every per-claim CDI spec.
func (d *Driver) specPrefix() string { return d.opts.DriverName + "-claim-" }

// specPath is the CDI spec file of one claim.
func (d *Driver) specPath(uid types.UID) string {
	return filepath.Join(d.opts.CDIDir, d.specPrefix()+string(uid)+".json")
}

// PrepareResourceClaims prepares each claim independently: a claim that
// cannot be prepared gets its own error and the others proceed.
func (d *Driver) PrepareResourceClaims(ctx context.Context, claims []*resourceapi.ResourceClaim) (map[types.UID]kubeletplugin.PrepareResult, error) {
	out := make(map[types.UID]kubeletplugin.PrepareResult, len(claims))
	if err := d.reload(); err != nil {
		return nil, err
	}
	for _, c := range claims {
		devs, err := d.prepare(c)
		if err != nil {
			d.log.Warn("claim not prepared", "claim", c.Namespace+"/"+c.Name, "uid", c.UID, "err", err)
			out[c.UID] = kubeletplugin.PrepareResult{Err: err}
			continue
		}
		out[c.UID] = kubeletplugin.PrepareResult{Devices: devs}
	}
	return out, nil
}

// prepare is PrepareResourceClaims for one claim. It is idempotent: a claim
// already in the checkpoint gets the same devices (and its CDI spec rewritten,
// should it have been removed).
func (d *Driver) prepare(c *resourceapi.ResourceClaim) ([]kubeletplugin.Device, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if pc, ok := d.claims[c.UID]; ok {
		if err := d.writeSpec(c.UID, pc); err != nil {
			return nil, err
		}
		return resultDevices(pc), nil
	}
	pc, err := d.plan(c)
	if err != nil {
		return nil, err
	}
	if err := d.writeSpec(c.UID, pc); err != nil {
		return nil, err
	}
	d.claims[c.UID] = pc
	if err := d.save(); err != nil {
		delete(d.claims, c.UID)
		_ = os.Remove(d.specPath(c.UID))
		return nil, err
	}
	d.log.Info("claim prepared", "claim", c.Namespace+"/"+c.Name, "uid", c.UID, "devices", len(pc.Devices),
		"note", "XRT pins 64 MiB per process: the pod needs CAP_IPC_LOCK or a memlock limit of at least that")
	return resultDevices(pc), nil
}

// plan maps the claim's allocation results for this driver to NPUs of this
// node and checks that the contexts they take, added to those of the claims
// already prepared, fit each NPU: the driver is the last line of defence
// against an allocation the scheduler should not have made.
func (d *Driver) plan(c *resourceapi.ResourceClaim) (PreparedClaim, error) {
	pc := PreparedClaim{Namespace: c.Namespace, Name: c.Name}
	if c.Status.Allocation == nil {
		return pc, fmt.Errorf("claim %s/%s is not allocated", c.Namespace, c.Name)
	}
	inUse := d.contextsInUse()
	for _, r := range c.Status.Allocation.Devices.Results {
		if r.Driver != d.opts.DriverName {
			continue
		}
		if r.Pool != d.opts.NodeName {
			return pc, fmt.Errorf("claim %s/%s: device %s is in pool %s, this node's pool is %s", c.Namespace, c.Name, r.Device, r.Pool, d.opts.NodeName)
		}
		n, ok := d.npus[r.Device]
		if !ok {
			return pc, fmt.Errorf("claim %s/%s: device %s is not an NPU of this node (known: %s)", c.Namespace, c.Name, r.Device, strings.Join(sortedKeys(d.npus), ", "))
		}
		if !n.Healthy {
			return pc, fmt.Errorf("claim %s/%s: NPU %s is unhealthy: %s", c.Namespace, c.Name, r.Device, n.Problem)
		}
		want := int64(n.Contexts) // no consumed capacity: the allocation took the whole NPU
		if q, ok := r.ConsumedCapacity[CapacityContexts]; ok {
			want = q.Value()
		}
		admin := r.AdminAccess != nil && *r.AdminAccess // monitoring: takes no context
		if admin {
			want = 0
		}
		if (!admin && want < 1) || inUse[r.Device]+want > int64(n.Contexts) {
			return pc, fmt.Errorf("claim %s/%s: NPU %s has %d of %d hardware contexts prepared for other claims, cannot add %d",
				c.Namespace, c.Name, r.Device, inUse[r.Device], n.Contexts, want)
		}
		inUse[r.Device] += want
		pc.Devices = append(pc.Devices, PreparedDevice{
			Requests: []string{r.Request}, Pool: r.Pool, Device: r.Device, ShareID: r.ShareID,
			PCIAddress: n.PCIAddress, DevicePath: n.DevicePath, Contexts: want,
			CDIDevice: d.cdiKind() + "=" + cdiName(c.UID, r.Device, len(pc.Devices)),
		})
	}
	if len(pc.Devices) == 0 {
		return pc, fmt.Errorf("claim %s/%s has no device of driver %s", c.Namespace, c.Name, d.opts.DriverName)
	}
	return pc, nil
}

// cdiName is the unique CDI device name of the i-th device of a claim; the
// claim UID keeps runtimes' CDI caches from matching a stale spec.
func cdiName(uid types.UID, device string, i int) string {
	return fmt.Sprintf("%s-%d-%s", uid, i, device)
}

// contextsInUse sums the prepared claims' contexts per device name.
func (d *Driver) contextsInUse() map[string]int64 {
	out := map[string]int64{}
	for _, pc := range d.claims {
		for _, pd := range pc.Devices {
			out[pd.Device] += pd.Contexts
		}
	}
	return out
}

// writeSpec writes the claim's CDI spec: each device adds its NPU's node, a
// mirror of the host's (mode, owner, group: cdi.HostNode), and the claim's
// XDNA_* environment. A node that is missing or not a character device fails
// it before anything is written.
func (d *Driver) writeSpec(uid types.UID, pc PreparedClaim) error {
	var paths, addrs []string
	var contexts int64
	for _, pd := range pc.Devices {
		paths = append(paths, pd.DevicePath)
		addrs = append(addrs, pd.PCIAddress)
		contexts += pd.Contexts
	}
	env := []string{
		plugin.EnvDevices + "=" + strings.Join(paths, ","),
		plugin.EnvPCIAddresses + "=" + strings.Join(addrs, ","),
		EnvContexts + "=" + strconv.FormatInt(contexts, 10),
		EnvMemlockBytes + "=" + strconv.Itoa(MemlockBytes),
	}
	spec := cdi.Spec{Version: cdi.Version, Kind: d.cdiKind(), Devices: []cdi.Device{}}
	for _, pd := range pc.Devices {
		name := pd.CDIDevice[strings.IndexByte(pd.CDIDevice, '=')+1:]
		node, err := cdi.HostNode(pd.DevicePath, cdi.UnderRoot(d.opts.HostDevRoot, pd.DevicePath),
			cdi.UnderRoot(d.opts.Scanner.DevRoot, pd.DevicePath))
		if err != nil {
			return fmt.Errorf("CDI spec of claim %s/%s, NPU %s: %w", pc.Namespace, pc.Name, pd.Device, err)
		}
		spec.Devices = append(spec.Devices, cdi.Device{Name: name, ContainerEdits: cdi.Edits{
			DeviceNodes: []cdi.DeviceNode{node},
			Env:         env,
		}})
	}
	if err := writeJSON(d.specPath(uid), spec); err != nil {
		return fmt.Errorf("write CDI spec of claim %s/%s: %w", pc.Namespace, pc.Name, err)
	}
	return nil
}

// UnprepareResourceClaims removes each claim's CDI spec and forgets it.
// Claims that are not prepared (already unprepared, or never prepared here)
// succeed: the kubelet may ask again after a restart.
func (d *Driver) UnprepareResourceClaims(ctx context.Context, claims []kubeletplugin.NamespacedObject) (map[types.UID]error, error) {
	out := make(map[types.UID]error, len(claims))
	if err := d.reload(); err != nil {
		return nil, err
	}
	for _, c := range claims {
		out[c.UID] = d.unprepare(c.UID)
		if out[c.UID] == nil {
			d.log.Info("claim unprepared", "claim", c.Namespace+"/"+c.Name, "uid", c.UID)
		}
	}
	return out, nil
}

func (d *Driver) unprepare(uid types.UID) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.Remove(d.specPath(uid)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove CDI spec of claim %s: %w", uid, err)
	}
	pc, ok := d.claims[uid]
	if !ok {
		return nil
	}
	delete(d.claims, uid)
	if err := d.save(); err != nil {
		d.claims[uid] = pc
		return err
	}
	return nil
}

// Prepared returns the prepared claims (a copy), for tests and logs.
func (d *Driver) Prepared() map[types.UID]PreparedClaim {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[types.UID]PreparedClaim, len(d.claims))
	for k, v := range d.claims {
		out[k] = v
	}
	return out
}

// reload rereads the checkpoint before each prepare or unprepare: during a
// rolling update two driver pods share it (the kubeletplugin helper's file
// lock serialises their calls), and the other one may have changed it.
func (d *Driver) reload() error {
	claims, err := loadCheckpoint(filepath.Join(d.opts.StateDir, CheckpointFile))
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.claims = claims
	d.mu.Unlock()
	return nil
}

// save writes the checkpoint; d.mu is held.
func (d *Driver) save() error {
	return saveCheckpoint(filepath.Join(d.opts.StateDir, CheckpointFile), d.claims)
}

// removeOrphanSpecs deletes per-claim CDI specs whose claim the checkpoint
// does not list.
func (d *Driver) removeOrphanSpecs() error {
	files, err := filepath.Glob(filepath.Join(d.opts.CDIDir, d.specPrefix()+"*.json"))
	if err != nil {
		return fmt.Errorf("list CDI specs: %w", err)
	}
	for _, f := range files {
		uid := types.UID(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), d.specPrefix()), ".json"))
		if _, ok := d.claims[uid]; ok {
			continue
		}
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove orphaned CDI spec: %w", err)
		}
		d.log.Info("removed CDI spec of a claim not in the checkpoint", "file", f)
	}
	return nil
}

// resultDevices is the kubelet's view of a prepared claim.
func resultDevices(pc PreparedClaim) []kubeletplugin.Device {
	out := make([]kubeletplugin.Device, 0, len(pc.Devices))
	for _, pd := range pc.Devices {
		out = append(out, kubeletplugin.Device{Requests: pd.Requests, PoolName: pd.Pool, DeviceName: pd.Device,
			CDIDeviceIDs: []string{pd.CDIDevice}, ShareID: pd.ShareID})
	}
	return out
}

// sortedKeys lists a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
