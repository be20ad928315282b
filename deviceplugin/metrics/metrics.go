// Package metrics holds the device plugin's Prometheus collectors.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/discovery"
)

// Metrics are the device plugin's collectors. A nil *Metrics is valid and
// records nothing, so packages can be used without metrics.
type Metrics struct {
	// Devices counts known NPUs by family.
	Devices *prometheus.GaugeVec
	// HealthyDevices counts healthy NPUs by family.
	HealthyDevices *prometheus.GaugeVec
	// Allocations counts successful container allocations by resource.
	Allocations *prometheus.CounterVec
	// AllocationErrors counts refused container allocations by resource.
	AllocationErrors *prometheus.CounterVec
	// Registrations counts successful registrations with the kubelet by resource.
	Registrations *prometheus.CounterVec
	// Reregistrations counts re-serve/re-register cycles by resource and trigger.
	Reregistrations *prometheus.CounterVec
	// StreamRestarts counts ListAndWatch streams opened after an earlier one ended.
	StreamRestarts *prometheus.CounterVec
	// Registered is 1 while the resource is registered with the kubelet.
	Registered *prometheus.GaugeVec
}

// New creates the collectors and registers them with reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Devices: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xdna_device_plugin_devices", Help: "NPUs known to the plugin, by family.",
		}, []string{"family"}),
		HealthyDevices: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xdna_device_plugin_devices_healthy", Help: "Healthy NPUs, by family.",
		}, []string{"family"}),
		Allocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xdna_device_plugin_allocations_total", Help: "Container allocations granted, by resource.",
		}, []string{"resource"}),
		AllocationErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xdna_device_plugin_allocation_errors_total", Help: "Container allocations refused (unknown or unhealthy IDs), by resource.",
		}, []string{"resource"}),
		Registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xdna_device_plugin_registrations_total", Help: "Successful registrations with the kubelet, by resource.",
		}, []string{"resource"}),
		Reregistrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xdna_device_plugin_reregistrations_total", Help: "Re-serve and re-register cycles, by resource and trigger.",
		}, []string{"resource", "trigger"}),
		StreamRestarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xdna_device_plugin_stream_restarts_total", Help: "ListAndWatch streams opened after an earlier stream ended, by resource.",
		}, []string{"resource"}),
		Registered: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xdna_device_plugin_registered", Help: "1 while the resource is registered with the kubelet.",
		}, []string{"resource"}),
	}
	reg.MustRegister(m.Devices, m.HealthyDevices, m.Allocations, m.AllocationErrors,
		m.Registrations, m.Reregistrations, m.StreamRestarts, m.Registered)
	return m
}

// SetDevices records the known and healthy NPU counts of every family in
// families (families with no NPU report 0).
func (m *Metrics) SetDevices(families []discovery.Family, npus []discovery.NPU) {
	if m == nil {
		return
	}
	for _, f := range families {
		mine := discovery.OfFamily(npus, f)
		var healthy float64
		for _, n := range mine {
			if n.Healthy {
				healthy++
			}
		}
		m.Devices.WithLabelValues(string(f)).Set(float64(len(mine)))
		m.HealthyDevices.WithLabelValues(string(f)).Set(healthy)
	}
}

// Allocated counts one granted (ok) or refused container allocation.
func (m *Metrics) Allocated(resource string, ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.Allocations.WithLabelValues(resource).Inc()
	} else {
		m.AllocationErrors.WithLabelValues(resource).Inc()
	}
}

// RegisteredWithKubelet records a successful registration.
func (m *Metrics) RegisteredWithKubelet(resource string) {
	if m == nil {
		return
	}
	m.Registrations.WithLabelValues(resource).Inc()
	m.Registered.WithLabelValues(resource).Set(1)
}

// Reregistering records the start of a re-serve cycle caused by trigger.
func (m *Metrics) Reregistering(resource, trigger string) {
	if m == nil {
		return
	}
	m.Reregistrations.WithLabelValues(resource, trigger).Inc()
	m.Registered.WithLabelValues(resource).Set(0)
}

// StreamRestarted records a ListAndWatch stream that follows an ended one.
func (m *Metrics) StreamRestarted(resource string) {
	if m == nil {
		return
	}
	m.StreamRestarts.WithLabelValues(resource).Inc()
}
