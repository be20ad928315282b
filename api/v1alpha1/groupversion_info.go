// Package v1alpha1 holds the whisper.xdna.io/v1alpha1 API: the WhisperEncoder
// kind, which asks the operator to stage a Whisper encoder's weights once into a
// shared cache and serve them from encoder pods.
//
// +kubebuilder:object:generate=true
// +groupName=whisper.xdna.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of the types in this package.
	GroupVersion = schema.GroupVersion{Group: "whisper.xdna.io", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
