package operator

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"k8s.io/apimachinery/pkg/labels"

	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
	"github.com/xdna-whisper/xdna-whisper/internal/redact"
)

// Labels and annotations the operator puts on what it creates.
const (
	labelName        = "app.kubernetes.io/name"
	labelInstance    = "app.kubernetes.io/instance"
	labelComponent   = "app.kubernetes.io/component"
	labelManagedBy   = "app.kubernetes.io/managed-by"
	labelEncoder     = "whisper.xdna.io/encoder"
	labelSourceHash  = "whisper.xdna.io/source-hash"
	labelJobUID      = "batch.kubernetes.io/controller-uid"
	annotationHash   = "whisper.xdna.io/spec-hash"
	annotationSource = "whisper.xdna.io/source"
	annotationTry    = "whisper.xdna.io/attempt"
	annotationKey    = "whisper.xdna.io/weights-key"

	appName   = "whisper-encoder"
	managedBy = "whisper-operator"

	componentEncoder = "encoder"
	componentStaging = "staging"
	componentRecord  = "weights-record"

	stageContainer   = "stage"
	encoderContainer = "encoder"
	recordResultKey  = "result.json"
)

// ManagedByLabel selects everything the operator creates (its caches are restricted to it).
var ManagedByLabel = labels.Set{labelManagedBy: managedBy}

// sourceHash identifies a model source: WhisperEncoders of one namespace with equal hashes share a
// staging Job and a weights record. It covers what decides the staged bytes (source and precision),
// not credentials. 16 hex digits (64 bits) keep names short.
func sourceHash(we *whisperv1.WhisperEncoder) string {
	src := we.Spec.Model.Source
	id := struct {
		URL       string `json:"url,omitempty"`
		Claim     string `json:"claim,omitempty"`
		Path      string `json:"path,omitempty"`
		SHA256    string `json:"sha256,omitempty"`
		Precision string `json:"precision"`
	}{URL: src.URL, SHA256: src.SHA256, Precision: string(we.Spec.Defaulted().Precision)}
	if src.PVC != nil {
		id.Claim, id.Path = src.PVC.ClaimName, src.PVC.Path
	}
	b, _ := json.Marshal(id) // a struct of strings always marshals
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// sourceString describes a source for humans, annotations and metric labels: a URL's
// credentials (a signed URL's query, userinfo) are masked.
func sourceString(src whisperv1.ModelSource) string {
	if src.PVC != nil {
		return "pvc://" + src.PVC.ClaimName + "/" + src.PVC.Path
	}
	return redact.URL(src.URL)
}

// stagingJobName is the per-source staging Job.
func stagingJobName(hash string) string { return "whisper-stage-" + hash }

// recordName is the per-source ConfigMap that remembers a successful staging after its Job is gone.
func recordName(hash string) string { return "whisper-weights-" + hash }

// encoderLabels are the labels of an encoder's Deployment, pods, Service and autoscaler.
func encoderLabels(we *whisperv1.WhisperEncoder) map[string]string {
	return map[string]string{
		labelName:      appName,
		labelInstance:  we.Name,
		labelComponent: componentEncoder,
		labelManagedBy: managedBy,
		labelEncoder:   we.Name,
	}
}

// selectorLabels select an encoder's pods; they never change for the life of the Deployment.
func selectorLabels(we *whisperv1.WhisperEncoder) map[string]string {
	return map[string]string{labelName: appName, labelEncoder: we.Name}
}

// stagingLabels are the labels of a source's staging Job, its pods and its record.
func stagingLabels(hash, component string) map[string]string {
	return map[string]string{
		labelName:       appName,
		labelComponent:  component,
		labelManagedBy:  managedBy,
		labelSourceHash: hash,
	}
}
