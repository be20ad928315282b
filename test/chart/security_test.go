package chart

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/config"
)

// podTemplates returns the pod templates of every rendered Deployment and DaemonSet by object ID.
func podTemplates(t *testing.T, r *rendering) map[string]corev1.PodTemplateSpec {
	t.Helper()
	out := map[string]corev1.PodTemplateSpec{}
	for _, o := range r.objects {
		switch o.GetKind() {
		case "Deployment":
			var d appsv1.Deployment
			fromUnstructured(t, o, &d)
			out[objectID(o)] = d.Spec.Template
		case "DaemonSet":
			var d appsv1.DaemonSet
			fromUnstructured(t, o, &d)
			out[objectID(o)] = d.Spec.Template
		case "StatefulSet", "Job", "CronJob", "Pod", "ReplicaSet":
			t.Errorf("%s: the chart renders no %s (add it to the security checks)", objectID(o), o.GetKind())
		}
	}
	return out
}

// fromUnstructured converts u into the typed object into, failing on unknown fields.
func fromUnstructured(t *testing.T, u *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, into, true); err != nil {
		t.Fatalf("%s: %v", objectID(u), err)
	}
}

// isDevicePlugin says whether the pod template is the device plugin's.
func isDevicePlugin(id string) bool {
	return strings.HasPrefix(id, "DaemonSet ") && strings.HasSuffix(id, "-device-plugin")
}

// isDRADriver says whether the pod template is the DRA driver's.
func isDRADriver(id string) bool {
	return strings.HasPrefix(id, "DaemonSet ") && strings.HasSuffix(id, "-dra-driver")
}

// isNodeAgent says whether the pod template is one of the two node agents (device plugin, DRA
// driver), the only workloads that run as UID 0 and mount host paths (see TestSecurityProperties).
func isNodeAgent(id string) bool { return isDevicePlugin(id) || isDRADriver(id) }

// TestSecurityProperties checks every container of every rendering: not privileged, no
// privilege escalation, every capability dropped and none added, read-only root filesystem,
// RuntimeDefault seccomp, no host namespaces, non-root — except the device plugin and the DRA
// driver, which run as UID 0 without any capability only because the kubelet's socket
// directories are root-owned. Their host mounts are exactly the ones each documents, read-only
// where it only reads.
func TestSecurityProperties(t *testing.T) {
	needEnv(t)
	for _, vc := range valuesCases(t) {
		t.Run(vc.name, func(t *testing.T) {
			r := render(t, vc)
			templates := podTemplates(t, r)
			if len(templates) == 0 && r.value("operator.enabled", true) != false {
				t.Fatal("no workload rendered")
			}
			for id, tmpl := range templates {
				for _, err := range podSecurityProblems(id, tmpl.Spec) {
					t.Errorf("%s: %v", id, err)
				}
				if isDevicePlugin(id) {
					checkDevicePluginMounts(t, id, tmpl.Spec)
				}
				if isDRADriver(id) {
					checkDRADriverMounts(t, r, id, tmpl.Spec)
				}
			}
		})
	}
}

// podSecurityProblems lists every way spec falls short of the chart's security properties.
func podSecurityProblems(id string, spec corev1.PodSpec) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		bad("host namespaces: network %v, pid %v, ipc %v", spec.HostNetwork, spec.HostPID, spec.HostIPC)
	}
	psc := spec.SecurityContext
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		bad("pod seccomp profile is not RuntimeDefault")
	}
	root := isNodeAgent(id)
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		sc := c.SecurityContext
		if sc == nil {
			bad("container %s has no securityContext", c.Name)
			continue
		}
		if sc.Privileged == nil || *sc.Privileged {
			bad("container %s: privileged is %v, want explicitly false", c.Name, deref(sc.Privileged))
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			bad("container %s: allowPrivilegeEscalation %v, want false", c.Name, deref(sc.AllowPrivilegeEscalation))
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			bad("container %s: readOnlyRootFilesystem %v, want true", c.Name, deref(sc.ReadOnlyRootFilesystem))
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
			bad("container %s: capabilities %+v, want drop [ALL] and nothing added", c.Name, sc.Capabilities)
		}
		if sc.SeccompProfile != nil && sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			bad("container %s: seccomp %s", c.Name, sc.SeccompProfile.Type)
		}
		uid := effective(sc.RunAsUser, psc.RunAsUser)
		nonRoot := effective(sc.RunAsNonRoot, psc.RunAsNonRoot)
		switch {
		case root && (uid == nil || *uid != 0):
			bad("container %s: node agent runAsUser %v, want 0 (the kubelet's directories are root-owned)", c.Name, deref(uid))
		case !root && (nonRoot == nil || !*nonRoot || uid == nil || *uid == 0):
			bad("container %s: runAsNonRoot %v, runAsUser %v, want a non-root user", c.Name, deref(nonRoot), deref(uid))
		}
		if c.Image == "" || strings.HasSuffix(c.Image, ":") || strings.HasSuffix(c.Image, ":latest") {
			bad("container %s: image %q, want a pinned tag or digest", c.Name, c.Image)
		}
		if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			bad("container %s: memory request and limit must be set", c.Name)
		}
	}
	for _, v := range spec.Volumes {
		if v.HostPath != nil && !root {
			bad("volume %s: hostPath %s outside the node agents", v.Name, v.HostPath.Path)
		}
	}
	return errs
}

// checkDevicePluginMounts compares the device plugin's host mounts with the paths its own
// configuration parser reads from the rendered arguments.
func checkDevicePluginMounts(t *testing.T, id string, spec corev1.PodSpec) {
	t.Helper()
	c := spec.Containers[0]
	cfg, _, err := config.Parse("xdna-device-plugin", c.Args)
	if err != nil {
		t.Fatalf("%s: the device plugin refuses the rendered arguments %q: %v", id, c.Args, err)
	}
	type mount struct {
		hostPath string
		readOnly bool
	}
	want := map[string]mount{ // container path → host path, read-only
		cfg.PluginDir: {cfg.PluginDir, false}, // the kubelet's sockets: same path inside
		cfg.SysfsRoot: {"/sys", true},
		cfg.DevRoot:   {cfg.HostDevRoot, true}, // what allocations name is what is mounted
	}
	if cfg.NFD.Enabled {
		want[cfg.NFD.Dir] = mount{cfg.NFD.Dir, false}
	}
	if cfg.CDI.Enabled {
		want[cfg.CDI.Dir] = mount{cfg.CDI.Dir, false}
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
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: the device plugin needs no API access; automountServiceAccountToken must be false", id)
	}
}

// effective is the container's setting, else the pod's.
func effective[T any](container, pod *T) *T {
	if container != nil {
		return container
	}
	return pod
}

// deref formats a pointer's value, or "unset".
func deref[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}
