package plugin

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/discovery"
)

// Policy chooses among free slots when NPUs are shared.
type Policy string

const (
	// Spread prefers slots on the least-loaded NPU, so pods get NPUs to themselves
	// while there are free ones.
	Spread Policy = "spread"
	// Pack prefers slots on the most-loaded NPU that still has room, keeping whole
	// NPUs free for pods that need them.
	Pack Policy = "pack"
)

// inventory is the advertised view of a set of NPUs: one slot per NPU, or
// contexts slots per NPU when shared.
type inventory struct {
	npus     []discovery.NPU
	contexts int
	byAddr   map[string]int // PCI address → index in npus
}

func newInventory(npus []discovery.NPU, contexts int) inventory {
	inv := inventory{npus: npus, contexts: contexts, byAddr: map[string]int{}}
	for i, n := range npus {
		inv.byAddr[n.PCIAddress] = i
	}
	return inv
}

// slotIDs are an NPU's device IDs: its PCI address, or "<address>-<k>" for
// k in [0, contexts) when shared.
func (inv inventory) slotIDs(n discovery.NPU) []string {
	if inv.contexts == 1 {
		return []string{n.PCIAddress}
	}
	ids := make([]string, inv.contexts)
	for k := range ids {
		ids[k] = n.PCIAddress + "-" + strconv.Itoa(k)
	}
	return ids
}

// npuOf resolves a device ID to its NPU.
func (inv inventory) npuOf(id string) (discovery.NPU, bool) {
	addr := id
	if inv.contexts > 1 {
		i := strings.LastIndexByte(id, '-')
		if i < 0 {
			return discovery.NPU{}, false
		}
		k, err := strconv.Atoi(id[i+1:])
		if err != nil || k < 0 || k >= inv.contexts || id[i+1:] != strconv.Itoa(k) {
			return discovery.NPU{}, false
		}
		addr = id[:i]
	}
	idx, ok := inv.byAddr[addr]
	if !ok {
		return discovery.NPU{}, false
	}
	return inv.npus[idx], true
}

// apiDevices is the ListAndWatch list: every slot with its health and NUMA node.
func (inv inventory) apiDevices() []*pluginapi.Device {
	var out []*pluginapi.Device
	for _, n := range inv.npus {
		health := pluginapi.Unhealthy
		if n.Healthy {
			health = pluginapi.Healthy
		}
		var topo *pluginapi.TopologyInfo
		if n.NUMANode >= 0 {
			topo = &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: int64(n.NUMANode)}}}
		}
		for _, id := range inv.slotIDs(n) {
			out = append(out, &pluginapi.Device{ID: id, Health: health, Topology: topo})
		}
	}
	return out
}

// resolve maps requested device IDs to their distinct NPUs (sorted by PCI
// address), refusing unknown and unhealthy IDs with an error that names them.
func (inv inventory) resolve(resource string, ids []string) ([]discovery.NPU, error) {
	var unknown, unhealthy []string
	seen := map[string]bool{}
	var npus []discovery.NPU
	for _, id := range ids {
		n, ok := inv.npuOf(id)
		switch {
		case !ok:
			unknown = append(unknown, id)
		case !n.Healthy:
			unhealthy = append(unhealthy, fmt.Sprintf("%s (%s)", id, n.Problem))
		case !seen[n.PCIAddress]:
			seen[n.PCIAddress] = true
			npus = append(npus, n)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("%s: unknown device IDs %s; this node advertises %s",
			resource, strings.Join(unknown, ", "), inv.describe())
	}
	if len(unhealthy) > 0 {
		return nil, fmt.Errorf("%s: unhealthy device IDs: %s", resource, strings.Join(unhealthy, "; "))
	}
	sort.Slice(npus, func(i, j int) bool { return npus[i].PCIAddress < npus[j].PCIAddress })
	return npus, nil
}

// describe summarises the advertised IDs for error messages.
func (inv inventory) describe() string {
	if len(inv.npus) == 0 {
		return "no NPU"
	}
	var addrs []string
	for _, n := range inv.npus {
		addrs = append(addrs, n.PCIAddress)
	}
	if inv.contexts == 1 {
		return "IDs " + strings.Join(addrs, ", ")
	}
	return fmt.Sprintf("IDs <address>-<0..%d> for addresses %s", inv.contexts-1, strings.Join(addrs, ", "))
}

// prefer picks size IDs from available, starting with mustInclude, then one at a
// time from the NPU the policy favours: Spread takes the least-loaded NPU, Pack
// the most-loaded one that still has a free slot. Load counts the NPU's slots not
// in available (held by other containers) plus those already picked. Ties go to
// the lower PCI address, then the lower slot.
func (inv inventory) prefer(policy Policy, available, mustInclude []string, size int) []string {
	free := map[string][]string{} // PCI address → its available slot IDs, sorted
	for _, id := range available {
		if n, ok := inv.npuOf(id); ok {
			free[n.PCIAddress] = append(free[n.PCIAddress], id)
		}
	}
	load := map[string]int{}
	for addr, ids := range free {
		sort.Strings(ids)
		load[addr] = inv.contexts - len(ids)
	}
	var picked []string
	take := func(addr, id string) {
		picked = append(picked, id)
		load[addr]++
		ids := free[addr]
		for i, x := range ids {
			if x == id {
				free[addr] = append(ids[:i:i], ids[i+1:]...)
				break
			}
		}
	}
	for _, id := range mustInclude {
		if n, ok := inv.npuOf(id); ok && len(picked) < size {
			take(n.PCIAddress, id)
		}
	}
	for len(picked) < size {
		best := ""
		for _, n := range inv.npus {
			addr := n.PCIAddress
			if len(free[addr]) == 0 {
				continue
			}
			if best == "" || (policy == Pack && load[addr] > load[best]) || (policy != Pack && load[addr] < load[best]) {
				best = addr
			}
		}
		if best == "" {
			break // fewer available than asked: the kubelet will not ask for this
		}
		take(best, free[best][0])
	}
	return picked
}
