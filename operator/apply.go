package operator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// fieldManager is the operator's server-side apply field manager: it owns every field the
// operator sets on the objects it applies.
const fieldManager = "whisper-operator"

// apply makes the live object carry every field the operator sets on desired, with as few writes
// as possible: when the live object (from the cache) already holds all of them and carries
// desired's spec hash, it makes no write, however the API server defaulted the rest or whatever
// others added; otherwise it server-side applies desired as fieldManager, forcing ownership, so
// a hand edit of a field the operator sets (replicas, image, an env var, a port, a label) is put
// back, and a field the operator stops setting (its hash changes) is removed. Fields the operator
// does not set (replicas an autoscaler owns, labels others add) are left alone. keep (may be nil)
// copies from the live object into desired what the operator must not change (replicas an
// autoscaler took over, a Service's allocations); the hash is taken before it. When the API
// server refuses the apply as invalid, apply replaces the object with desired instead (server-
// side apply cannot take back a keyed list element whose key someone edited: a Service port
// renumbered by hand keeps our port's name). apply returns the live object after any write.
func apply[T client.Object](ctx context.Context, c client.Client, desired T, keep func(existing, desired T)) (T, error) {
	typ := reflect.TypeOf(desired).Elem()
	gvk, err := apiutil.GVKForObject(desired, c.Scheme())
	if err != nil {
		return desired, fmt.Errorf("apply %s %s/%s: %w", typ.Name(), desired.GetNamespace(), desired.GetName(), err)
	}
	what := fmt.Sprintf("%s %s/%s", gvk.Kind, desired.GetNamespace(), desired.GetName())
	hash := specHash(desired)
	desired.SetAnnotations(withEntry(desired.GetAnnotations(), annotationHash, hash))
	existing := newLike[T](typ, gvk)
	err = c.Get(ctx, client.ObjectKeyFromObject(desired), existing)
	found := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return desired, fmt.Errorf("get %s: %w", what, err)
	}
	if found && keep != nil {
		keep(existing, desired)
	}
	want, err := appliedFields(desired)
	if err != nil {
		return desired, fmt.Errorf("apply %s: %w", what, err)
	}
	if found {
		have, err := runtime.DefaultUnstructuredConverter.ToUnstructured(existing)
		if err != nil {
			return desired, fmt.Errorf("apply %s: %w", what, err)
		}
		if existing.GetAnnotations()[annotationHash] == hash && contains(ownedFields(want), have) {
			return existing, nil
		}
	}
	u := &unstructured.Unstructured{Object: want}
	u.SetGroupVersionKind(gvk)
	err = c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(fieldManager), client.ForceOwnership)
	if found && apierrors.IsInvalid(err) {
		return replace(ctx, c, existing, desired, what)
	}
	if err != nil {
		return desired, fmt.Errorf("apply %s: %w", what, err)
	}
	live := newLike[T](typ, gvk)
	if lu, ok := any(live).(*unstructured.Unstructured); ok {
		lu.Object = u.Object
		return live, nil
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, live); err != nil {
		return desired, fmt.Errorf("apply %s: read the response: %w", what, err)
	}
	return live, nil
}

// newLike is an empty object of type typ to read into; an unstructured one carries gvk, which
// the client needs to know what to read.
func newLike[T client.Object](typ reflect.Type, gvk schema.GroupVersionKind) T {
	obj := reflect.New(typ).Interface().(T)
	if u, ok := any(obj).(*unstructured.Unstructured); ok {
		u.SetGroupVersionKind(gvk)
	}
	return obj
}

// replace updates existing to desired (keeping others' labels, annotations and finalizers).
func replace[T client.Object](ctx context.Context, c client.Client, existing, desired T, what string) (T, error) {
	desired.SetResourceVersion(existing.GetResourceVersion())
	desired.SetLabels(merged(existing.GetLabels(), desired.GetLabels()))
	desired.SetAnnotations(merged(existing.GetAnnotations(), desired.GetAnnotations()))
	desired.SetFinalizers(existing.GetFinalizers())
	if err := c.Update(ctx, desired, client.FieldOwner(fieldManager)); err != nil {
		return desired, fmt.Errorf("replace %s: %w", what, err)
	}
	return desired, nil
}

// specHash is a digest of everything the operator sets on obj (metadata it owns and spec).
func specHash(obj client.Object) string {
	b, err := json.Marshal(obj)
	if err != nil {
		panic(fmt.Sprintf("spec hash: %T does not marshal: %v", obj, err)) // API types always marshal
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// appliedFields is obj as the apply configuration the operator sends: every field its builder set
// (the builders leave unset what the operator does not own), without status.
func appliedFields(obj client.Object) (map[string]any, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	delete(m, "status")
	return m, nil
}

// ownedFields is the part of an apply configuration a live object must contain for no write to be
// needed: all but the metadata the API server manages (only name, namespace, labels, annotations
// and owner references are set by the operator).
func ownedFields(applied map[string]any) map[string]any {
	out := make(map[string]any, len(applied))
	for k, v := range applied {
		if k != "metadata" && k != "apiVersion" && k != "kind" {
			out[k] = v
		}
	}
	meta, _ := applied["metadata"].(map[string]any)
	owned := map[string]any{}
	for _, k := range []string{"labels", "annotations", "ownerReferences"} {
		if v, ok := meta[k]; ok {
			owned[k] = v
		}
	}
	out["metadata"] = owned
	return out
}

// contains reports whether live holds everything want holds: every key of a map (a nil value asks
// for nothing), every element of a list of objects (each contained in some element of live's list:
// others may add elements, as server-side apply leaves them), and a list of scalars or a scalar
// exactly.
func contains(want, live any) bool {
	switch w := want.(type) {
	case nil:
		return true
	case map[string]any:
		l, ok := live.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range w {
			if l, isList := v.([]any); v == nil || isList && len(l) == 0 {
				continue // asks for nothing
			}
			if lv, ok := l[k]; !ok || !contains(v, lv) {
				return false
			}
		}
		return true
	case []any:
		l, ok := live.([]any)
		if !ok {
			return false
		}
		if !objectList(w) {
			return reflect.DeepEqual(w, l)
		}
		for _, e := range w {
			if !containsElement(e, l) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(want, live)
}

func objectList(l []any) bool {
	for _, e := range l {
		if _, ok := e.(map[string]any); !ok {
			return false
		}
	}
	return len(l) > 0
}

func containsElement(want any, live []any) bool {
	for _, e := range live {
		if contains(want, e) {
			return true
		}
	}
	return false
}

// withEntry returns m plus k=v, without modifying m.
func withEntry(m map[string]string, k, v string) map[string]string {
	return merged(m, map[string]string{k: v})
}

// merged returns a's entries overridden by b's, as a new map.
func merged(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
