package operator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// apply makes the live object match desired with as few writes as possible: it creates desired
// when absent; it leaves a live object alone when the live object carries desired's spec hash
// (so a steady state makes no writes, however the API server defaulted the live object); else it
// updates the live object to desired. keep (may be nil) copies from the live object what the
// operator must not overwrite: server allocations, or replicas an autoscaler owns. apply returns
// the live object after any write.
func apply[T client.Object](ctx context.Context, c client.Client, desired T, keep func(existing, desired T)) (T, error) {
	hash := specHash(desired)
	desired.SetAnnotations(withEntry(desired.GetAnnotations(), annotationHash, hash))
	kind := reflect.TypeOf(desired).Elem().Name()
	existing := reflect.New(reflect.TypeOf(desired).Elem()).Interface().(T)
	err := c.Get(ctx, client.ObjectKeyFromObject(desired), existing)
	switch {
	case apierrors.IsNotFound(err):
		if err := c.Create(ctx, desired); err != nil {
			return desired, fmt.Errorf("create %s %s/%s: %w", kind, desired.GetNamespace(), desired.GetName(), err)
		}
		return desired, nil
	case err != nil:
		return desired, fmt.Errorf("get %s %s/%s: %w", kind, desired.GetNamespace(), desired.GetName(), err)
	case existing.GetAnnotations()[annotationHash] == hash:
		return existing, nil
	}
	if keep != nil {
		keep(existing, desired)
	}
	desired.SetResourceVersion(existing.GetResourceVersion())
	desired.SetLabels(merged(existing.GetLabels(), desired.GetLabels()))
	desired.SetAnnotations(merged(existing.GetAnnotations(), desired.GetAnnotations()))
	desired.SetFinalizers(existing.GetFinalizers())
	if err := c.Update(ctx, desired); err != nil {
		return desired, fmt.Errorf("update %s %s/%s: %w", kind, desired.GetNamespace(), desired.GetName(), err)
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
