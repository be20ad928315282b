package chart

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// warnings records the API server's warning headers (deprecations, Pod Security).
type warnings struct {
	mu   sync.Mutex
	list []string
}

// HandleWarningHeader implements rest.WarningHandler.
func (w *warnings) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

// take returns and clears the recorded warnings.
func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.list
	w.list = nil
	return l
}

// apiClient talks to the envtest API server with a dynamic client and a RESTMapper that
// rediscovers kinds it does not know yet (CRDs installed during the tests).
type apiClient struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
	warn   *warnings
}

// newAPIClient returns a client for cfg (the admin's, unless a test passes another user's).
func newAPIClient(t *testing.T, cfg *rest.Config) *apiClient {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	w := &warnings{}
	cfg.WarningHandler = w
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		t.Fatal(err)
	}
	return &apiClient{dyn: dyn, mapper: mapper, warn: w}
}

// resource returns the client of u's kind, in u's namespace when the kind is namespaced.
func (c *apiClient) resource(u *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := u.GroupVersionKind()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("%s: kind not served: %w", objectID(u), err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if u.GetNamespace() == "" {
			return nil, fmt.Errorf("%s: namespaced kind rendered without metadata.namespace", objectID(u))
		}
		return c.dyn.Resource(m.Resource).Namespace(u.GetNamespace()), nil
	}
	if u.GetNamespace() != "" {
		return nil, fmt.Errorf("%s: cluster-scoped kind rendered with metadata.namespace", objectID(u))
	}
	return c.dyn.Resource(m.Resource), nil
}

// apply sends u as helm would on install (create) or, when it already exists, on upgrade
// (update), with strict field validation: unknown or duplicate fields are errors. With
// dryRun the API server validates, defaults and admits u but stores nothing.
func (c *apiClient) apply(u *unstructured.Unstructured, dryRun bool) error {
	res, err := c.resource(u)
	if err != nil {
		return err
	}
	var dr []string
	if dryRun {
		dr = []string{metav1.DryRunAll}
	}
	_, err = res.Create(bg(), u.DeepCopy(), metav1.CreateOptions{DryRun: dr, FieldValidation: metav1.FieldValidationStrict})
	if apierrors.IsAlreadyExists(err) {
		cur, gerr := res.Get(bg(), u.GetName(), metav1.GetOptions{})
		if gerr != nil {
			return fmt.Errorf("%s: %w", objectID(u), gerr)
		}
		upd := u.DeepCopy()
		upd.SetResourceVersion(cur.GetResourceVersion())
		_, err = res.Update(bg(), upd, metav1.UpdateOptions{DryRun: dr, FieldValidation: metav1.FieldValidationStrict})
	}
	if err != nil {
		return fmt.Errorf("%s: %w", objectID(u), err)
	}
	return nil
}

// ensureNamespace creates namespace ns (Pod Security level privileged, as the README asks
// for the release namespace) unless it exists.
func ensureNamespace(t *testing.T, c *apiClient, ns string, labels map[string]string) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("Namespace")
	u.SetName(ns)
	u.SetLabels(labels)
	if err := c.apply(u, false); err != nil {
		t.Fatal(err)
	}
}

// privileged is the Pod Security label of namespaces that run the device plugin or NPU pods.
var privileged = map[string]string{"pod-security.kubernetes.io/enforce": "privileged"}

// TestDryRunEveryObject sends every object of every rendering to a real kube-apiserver as a
// server-side dry-run with strict field validation, after the namespaces exist. Kinds from
// other projects (ServiceMonitor, NodeFeatureRule) are served by CRDs installed at start.
func TestDryRunEveryObject(t *testing.T) {
	needEnv(t)
	c := newAPIClient(t, restConfig)
	for _, vc := range valuesCases(t) {
		t.Run(vc.name, func(t *testing.T) {
			r := render(t, vc)
			ensureNamespace(t, c, r.namespace, privileged)
			rendered := map[string]bool{}
			for _, ns := range r.ofKind("Namespace") {
				// Namespaces are created for real: the other objects live in them.
				if err := c.apply(ns, false); err != nil {
					t.Fatal(err)
				}
				rendered[ns.GetName()] = true
			}
			for _, ns := range r.workloadNamespaces() {
				if !rendered[ns] {
					ensureNamespace(t, c, ns, privileged)
				}
			}
			c.warn.take()
			kinds := map[string]int{}
			for _, o := range r.objects {
				if o.GetKind() == "Namespace" {
					continue
				}
				if err := c.apply(o, true); err != nil {
					t.Error(err)
				}
				if w := c.warn.take(); len(w) > 0 {
					t.Errorf("%s: API server warnings: %q", objectID(o), w)
				}
				kinds[o.GetKind()]++
			}
			t.Logf("dry-run of %d objects: %v", len(r.objects), kinds)
		})
	}
}

// TestPodSecurityLevels admits pods made from the rendered pod templates through the API
// server's Pod Security admission: the operator meets "restricted"; the device plugin and the
// DRA driver (hostPath, UID 0) need "privileged", which is why the README asks for that level.
func TestPodSecurityLevels(t *testing.T) {
	needEnv(t)
	c := newAPIClient(t, restConfig)
	var dra valuesCase
	for _, vc := range valuesCases(t) {
		if vc.name == "dra-values" {
			dra = vc
		}
	}
	tests := []struct {
		values          valuesCase
		workload, level string
		admitted        bool
	}{
		{valuesCases(t)[0], "Deployment/xdna-whisper-operator", "restricted", true},
		{valuesCases(t)[0], "DaemonSet/xdna-whisper-device-plugin", "baseline", false},
		{valuesCases(t)[0], "DaemonSet/xdna-whisper-device-plugin", "privileged", true},
		{dra, "DaemonSet/xdna-whisper-dra-driver", "baseline", false},
		{dra, "DaemonSet/xdna-whisper-dra-driver", "privileged", true},
	}
	for _, tt := range tests {
		t.Run(tt.workload+"@"+tt.level, func(t *testing.T) {
			r := render(t, tt.values)
			kind, name, _ := strings.Cut(tt.workload, "/")
			ns := "psa-" + tt.level
			ensureNamespace(t, c, ns, map[string]string{"pod-security.kubernetes.io/enforce": tt.level})
			pod := podFromTemplate(t, r, kind, name)
			pod.SetNamespace(ns)
			// The ServiceAccount admission would refuse a pod of a ServiceAccount missing from this
			// namespace before Pod Security looks at it; neither affects the Pod Security level.
			unstructured.RemoveNestedField(pod.Object, "spec", "serviceAccountName")
			_ = unstructured.SetNestedField(pod.Object, false, "spec", "automountServiceAccountToken")
			err := c.apply(pod, true)
			switch {
			case tt.admitted && err != nil:
				t.Errorf("not admitted at %s: %v", tt.level, err)
			case !tt.admitted && err == nil:
				t.Errorf("admitted at %s, want refused", tt.level)
			case !tt.admitted && !apierrors.IsForbidden(err):
				t.Errorf("refused at %s with %v, want a Pod Security refusal (403)", tt.level, err)
			}
			c.warn.take()
		})
	}
}

// podFromTemplate makes a Pod from the pod template of the rendered workload kind/name.
func podFromTemplate(t *testing.T, r *rendering, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range r.ofKind(kind) {
		if o.GetName() != name {
			continue
		}
		tmpl, ok, err := unstructured.NestedMap(o.Object, "spec", "template")
		if err != nil || !ok {
			t.Fatalf("%s has no pod template: %v", objectID(o), err)
		}
		pod := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Pod", "spec": tmpl["spec"]}}
		pod.SetName(name + "-pod")
		return pod
	}
	t.Fatalf("rendering %s has no %s %s", r.name, kind, name)
	return nil
}

// waitFor polls f until it returns nil or 60 s pass.
func waitFor(t *testing.T, what string, f func() error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(bg(), 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		last = f()
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, last)
	}
}
