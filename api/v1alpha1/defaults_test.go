package v1alpha1

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// crdFile is the CRD controller-gen generates from this package's markers.
var crdFile = filepath.Join("..", "..", "config", "crd", "bases", "whisper.xdna.io_whisperencoders.yaml")

// crdDefaults walks a schema and returns every default by JSON path below prefix.
func crdDefaults(prefix string, s apiextensionsv1.JSONSchemaProps, out map[string]any) {
	if s.Default != nil {
		var v any
		if err := json.Unmarshal(s.Default.Raw, &v); err != nil {
			panic(err)
		}
		out[prefix] = v
	}
	for name, p := range s.Properties {
		crdDefaults(prefix+"."+name, p, out)
	}
}

// jsonLeaves flattens a JSON document into path → value (objects become paths; empty objects
// and other values are leaves).
func jsonLeaves(prefix string, v any, out map[string]any) {
	m, ok := v.(map[string]any)
	if !ok {
		out[prefix] = v
		return
	}
	if len(m) == 0 {
		out[prefix] = map[string]any{}
	}
	for k, e := range m {
		jsonLeaves(prefix+"."+k, e, out)
	}
}

func specLeaves(t *testing.T, s WhisperEncoderSpec) map[string]any {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	jsonLeaves("spec", v, out)
	return out
}

// TestCRDDefaults: every default in the generated CRD is what Defaulted sets, and Defaulted sets
// nothing the CRD does not default. The spec has the optional structs with defaults inside
// (autoscaling, credentialsSecret) set, so that their defaults are compared too.
func TestCRDDefaults(t *testing.T) {
	b, err := os.ReadFile(crdFile)
	if err != nil {
		t.Fatalf("read the generated CRD (make manifests): %v", err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(b, &crd); err != nil {
		t.Fatalf("%s: %v", crdFile, err)
	}
	if len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Name != GroupVersion.Version {
		t.Fatalf("%s: want one version %s", crdFile, GroupVersion.Version)
	}
	fromCRD := map[string]any{}
	crdDefaults("spec", crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"], fromCRD)

	bare := WhisperEncoderSpec{
		Model:       ModelSpec{Source: ModelSource{URL: "https://h/x.onnx"}, CredentialsSecret: &SecretKeyReference{Name: "hf"}},
		Autoscaling: &AutoscalingSpec{MaxReplicas: 5},
	}
	before, after := specLeaves(t, bare), specLeaves(t, bare.Defaulted())
	fromGo := map[string]any{}
	for path, v := range after {
		if !reflect.DeepEqual(before[path], v) {
			fromGo[path] = v
		}
	}
	// A struct default of {} shows in the Go spec as its defaulted fields.
	for path, v := range fromCRD {
		if m, ok := v.(map[string]any); ok && len(m) == 0 {
			if !hasPathBelow(fromGo, path) {
				t.Errorf("%s: the CRD defaults it to {}, Defaulted sets nothing below it", path)
			}
			delete(fromCRD, path)
		}
	}
	for _, path := range sortedKeys(fromCRD, fromGo) {
		crdV, inCRD := fromCRD[path]
		goV, inGo := fromGo[path]
		switch {
		case !inCRD:
			t.Errorf("%s: Defaulted sets %v, the CRD has no default (add a +kubebuilder:default marker)", path, goV)
		case !inGo:
			t.Errorf("%s: the CRD defaults it to %v, Defaulted does not", path, crdV)
		case !reflect.DeepEqual(crdV, goV):
			t.Errorf("%s: the CRD defaults it to %v, Defaulted to %v", path, crdV, goV)
		}
	}
	if len(fromGo) < 12 {
		t.Errorf("only %d defaults compared: %v", len(fromGo), fromGo)
	}
}

func hasPathBelow(m map[string]any, prefix string) bool {
	for k := range m {
		if strings.HasPrefix(k, prefix+".") {
			return true
		}
	}
	return false
}

func sortedKeys(ms ...map[string]any) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range ms {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestDefaultedKeepsSetFields: set fields stay, and the receiver is not modified.
func TestDefaultedKeepsSetFields(t *testing.T) {
	replicas, window := int32(0), int32(0) // 0 is a setting here, not "unset"
	s := WhisperEncoderSpec{
		Precision: PrecisionBF16, Backend: BackendCPU, Replicas: &replicas,
		NPU:           NPUSpec{ResourceName: "xdna.io/npu", Count: 2, Allocation: NPUAllocationDRA, Contexts: 3, Selector: "true"},
		Transcription: TranscriptionSpec{Language: "de", Task: TaskTranslate, BeamSize: 5, WordTimestamps: true, DecoderWeights: DecoderWeightsInt8},
		Serving:       ServingSpec{MaxBatch: 2, MaxQueue: 5, HTTPPort: 8000, GRPCPort: 50051},
		Model:         ModelSpec{CredentialsSecret: &SecretKeyReference{Name: "s", Key: "TOKEN"}},
		Autoscaling:   &AutoscalingSpec{MinReplicas: 2, MaxReplicas: 4, TargetQueueDepth: 9, ScaleDownStabilizationSeconds: &window},
	}
	orig := *s.DeepCopy()
	d := s.Defaulted()
	if !reflect.DeepEqual(d, orig) {
		t.Errorf("Defaulted changed set fields:\n got %+v\nwant %+v", d, orig)
	}
	empty := WhisperEncoderSpec{Model: ModelSpec{CredentialsSecret: &SecretKeyReference{Name: "s"}}}
	_ = empty.Defaulted()
	if empty.Model.CredentialsSecret.Key != "" || empty.Replicas != nil {
		t.Errorf("Defaulted modified its receiver: %+v", empty)
	}
}
