// Package v1alpha1 holds the whisper.xdna.io/v1alpha1 API: the WhisperEncoder
// kind, which asks the operator to stage a Whisper encoder's weights once into a
// shared cache and serve them from encoder pods.
//
// +kubebuilder:object:generate=true
// +groupName=whisper.xdna.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API group and version of the types in this package.
	GroupVersion = schema.GroupVersion{Group: "whisper.xdna.io", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a runtime.Scheme.
	// (apimachinery's, not controller-runtime's deprecated scheme.Builder: an API
	// package should depend on little more than apimachinery.)
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers the kinds of this package and the meta types
// (ListOptions, …) under GroupVersion.
func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &WhisperEncoder{}, &WhisperEncoderList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
