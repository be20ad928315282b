package operator

import (
	"context"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xdna-whisper/xdna-whisper/api/report"
	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
	"github.com/xdna-whisper/xdna-whisper/internal/redact"
)

// Cache metrics: every weights record is one cache entry; an entry no WhisperEncoder of its
// namespace references is a candidate for deletion (the operator never deletes cache content).

var (
	cacheEntryDesc = prometheus.NewDesc("whisper_operator_cache_entry_info",
		"A staged weights entry in a namespace's cache (1 per entry); referenced is whether any WhisperEncoder uses it.",
		[]string{"namespace", "key", "source", "referenced"}, nil)
	cacheEntrySizeDesc = prometheus.NewDesc("whisper_operator_cache_entry_size_bytes",
		"Size of a staged weights entry.", []string{"namespace", "key"}, nil)
	cacheUnreferencedDesc = prometheus.NewDesc("whisper_operator_cache_entries_unreferenced",
		"Number of staged weights entries no WhisperEncoder references, per namespace.", []string{"namespace"}, nil)
)

// cacheEntry is one staged source in one namespace's cache.
type cacheEntry struct {
	Namespace  string
	Key        string
	Source     string
	SizeBytes  int64
	Referenced bool
}

// cacheEntries joins weights records with the WhisperEncoders that use their sources.
func cacheEntries(records []corev1.ConfigMap, wes []whisperv1.WhisperEncoder) []cacheEntry {
	used := map[[2]string]bool{}
	for i := range wes {
		used[[2]string{wes[i].Namespace, sourceHash(&wes[i])}] = true
	}
	var out []cacheEntry
	for _, cm := range records {
		r := report.ParseStageResult(cm.Data[recordResultKey])
		if r.Failed() {
			continue
		}
		out = append(out, cacheEntry{
			Namespace: cm.Namespace, Key: r.Key, Source: redact.URL(cm.Annotations[annotationSource]), SizeBytes: r.SizeBytes,
			Referenced: used[[2]string{cm.Namespace, cm.Labels[labelSourceHash]}],
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// CacheCollector exports the cache entries, read from the manager's cache at scrape time.
type CacheCollector struct {
	reader client.Reader
}

// NewCacheCollector returns a collector reading records and WhisperEncoders through reader.
func NewCacheCollector(reader client.Reader) *CacheCollector { return &CacheCollector{reader: reader} }

// Describe implements prometheus.Collector.
func (c *CacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cacheEntryDesc
	ch <- cacheEntrySizeDesc
	ch <- cacheUnreferencedDesc
}

// Collect implements prometheus.Collector.
func (c *CacheCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var records corev1.ConfigMapList
	var wes whisperv1.WhisperEncoderList
	if err := c.reader.List(ctx, &records, client.MatchingLabels{labelComponent: componentRecord, labelManagedBy: managedBy}); err != nil {
		ch <- prometheus.NewInvalidMetric(cacheEntryDesc, err)
		return
	}
	if err := c.reader.List(ctx, &wes); err != nil {
		ch <- prometheus.NewInvalidMetric(cacheEntryDesc, err)
		return
	}
	unreferenced := map[string]int{}
	for _, e := range cacheEntries(records.Items, wes.Items) {
		ref := "false"
		if e.Referenced {
			ref = "true"
		} else {
			unreferenced[e.Namespace]++
		}
		if _, ok := unreferenced[e.Namespace]; !ok {
			unreferenced[e.Namespace] = 0
		}
		ch <- prometheus.MustNewConstMetric(cacheEntryDesc, prometheus.GaugeValue, 1, e.Namespace, e.Key, e.Source, ref)
		ch <- prometheus.MustNewConstMetric(cacheEntrySizeDesc, prometheus.GaugeValue, float64(e.SizeBytes), e.Namespace, e.Key)
	}
	for ns, n := range unreferenced {
		ch <- prometheus.MustNewConstMetric(cacheUnreferencedDesc, prometheus.GaugeValue, float64(n), ns)
	}
}
