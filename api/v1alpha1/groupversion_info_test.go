package v1alpha1

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestAddToScheme checks that AddToScheme registers both kinds and the meta
// types under GroupVersion, as clients and the operator's manager need.
func TestAddToScheme(t *testing.T) {
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	for _, obj := range []runtime.Object{&WhisperEncoder{}, &WhisperEncoderList{}, &metav1.ListOptions{}} {
		gvks, _, err := s.ObjectKinds(obj)
		if err != nil {
			t.Errorf("%T: %v", obj, err)
			continue
		}
		found := false
		for _, gvk := range gvks {
			found = found || gvk.GroupVersion() == GroupVersion
		}
		if !found {
			t.Errorf("%T: kinds %v, want one in %s", obj, gvks, GroupVersion)
		}
	}
	if _, err := s.New(GroupVersion.WithKind("WhisperEncoder")); err != nil {
		t.Errorf("new WhisperEncoder: %v", err)
	}
}
