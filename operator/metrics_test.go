package operator

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"

	"github.com/xdna-whisper/xdna-whisper/api/report"
	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
)

func TestCacheEntries(t *testing.T) {
	used := testEncoder()
	other := testEncoder(func(we *whisperv1.WhisperEncoder) { we.Spec.Model.Source.URL = "https://models.test/other.onnx" })
	elsewhere := testEncoder(func(we *whisperv1.WhisperEncoder) { we.Namespace = "other-ns" })
	broken := weightsRecord(other, "zz", report.StageResult{})
	broken.Data[recordResultKey] = "not json"
	records := []corev1.ConfigMap{
		*weightsRecord(other, sourceHash(other), report.StageResult{Key: "k-other", SizeBytes: 5}),
		*weightsRecord(used, sourceHash(used), report.StageResult{Key: "k-used", SizeBytes: 7}),
		*broken,
	}
	got := cacheEntries(records, []whisperv1.WhisperEncoder{*used, *elsewhere})
	want := []cacheEntry{
		{Namespace: "ml", Key: "k-other", Source: "https://models.test/other.onnx", SizeBytes: 5, Referenced: false},
		{Namespace: "ml", Key: "k-used", Source: testURL, SizeBytes: 7, Referenced: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cacheEntries (-want +got):\n%s", diff)
	}
}

// TestCacheCollector reads real records and WhisperEncoders from the API server.
func TestCacheCollector(t *testing.T) {
	needEnvtest(t)
	ctx := context.Background()
	ns := testNamespace(t, false)
	we := newWE(ns, "user")
	must(t, k8s.Create(ctx, we))
	stale := newWE(ns, "gone", func(we *whisperv1.WhisperEncoder) { we.Spec.Model.Source.URL = "https://models.test/old.onnx" })
	for _, r := range []*corev1.ConfigMap{
		weightsRecord(we, sourceHash(we), report.StageResult{Key: "kused", SizeBytes: 41181184}),
		weightsRecord(stale, sourceHash(stale), report.StageResult{Key: "kold", SizeBytes: 1000}),
	} {
		must(t, k8s.Create(ctx, r))
	}
	want := `
# HELP whisper_operator_cache_entries_unreferenced Number of staged weights entries no WhisperEncoder references, per namespace.
# TYPE whisper_operator_cache_entries_unreferenced gauge
whisper_operator_cache_entries_unreferenced{namespace="NS"} 1
# HELP whisper_operator_cache_entry_info A staged weights entry in a namespace's cache (1 per entry); referenced is whether any WhisperEncoder uses it.
# TYPE whisper_operator_cache_entry_info gauge
whisper_operator_cache_entry_info{key="kold",namespace="NS",referenced="false",source="https://models.test/old.onnx"} 1
whisper_operator_cache_entry_info{key="kused",namespace="NS",referenced="true",source="` + testURL + `"} 1
# HELP whisper_operator_cache_entry_size_bytes Size of a staged weights entry.
# TYPE whisper_operator_cache_entry_size_bytes gauge
whisper_operator_cache_entry_size_bytes{key="kold",namespace="NS"} 1000
whisper_operator_cache_entry_size_bytes{key="kused",namespace="NS"} 4.1181184e+07
`
	// Other tests' namespaces hold records too: compare only this namespace's series.
	reader := namespaceReader{ns: ns}
	if err := testutil.CollectAndCompare(NewCacheCollector(reader), strings.NewReader(strings.ReplaceAll(want, "NS", ns))); err != nil {
		t.Error(err)
	}
}
