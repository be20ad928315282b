package server

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/xdna-whisper/xdna-whisper/encoder/server/metricnames"
)

// Metric names (defined in metricnames, which the operator reads too).
// QueueDepthMetric is the signal autoscaling uses: windows admitted and not
// yet taken into a batch (their front-end work included), with
// QueueCapacityMetric the level at which requests are refused;
// DecodeQueueDepthMetric is the Transcriber's decode queue.
const (
	namespace              = metricnames.Namespace
	QueueDepthMetric       = metricnames.QueueDepth
	QueueCapacityMetric    = metricnames.QueueCapacity
	DecodeQueueDepthMetric = metricnames.DecodeQueueDepth
)

// metrics are the server's Prometheus collectors.
type metrics struct {
	requests       *prometheus.CounterVec   // method, code
	duration       *prometheus.HistogramVec // method
	frontend       prometheus.Histogram
	queueWait      prometheus.Histogram
	compute        prometheus.Histogram
	batchSize      prometheus.Histogram
	queueDepth     prometheus.Gauge
	windows        prometheus.Counter
	windowsDropped prometheus.Counter
	audioSeconds   prometheus.Counter
	busySeconds    prometheus.Counter
	inFlight       prometheus.Gauge
	uploadBytes    prometheus.Gauge
	decodeBytes    prometheus.Gauge
	transcriptions prometheus.Gauge
	tokens         prometheus.Counter
	routes         *prometheus.CounterVec // route, status
}

// newMetrics creates and registers the collectors.
func newMetrics(reg prometheus.Registerer, info Info, opts Options) (*metrics, error) {
	latency := prometheus.ExponentialBucketsRange(0.005, 120, 20)
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "requests_total",
			Help: "Requests by method (Encode, EncodeStream, http_encode) and outcome (a gRPC status code name).",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "request_duration_seconds",
			Help: "Time from a request's arrival to its last response, by method, for successful requests.", Buckets: latency,
		}, []string{"method"}),
		frontend: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "frontend_seconds",
			Help: "Decoding, resampling and log-mel time per request.", Buckets: latency,
		}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "queue_wait_seconds",
			Help: "Time a window waited in the queue before its batch started computing.", Buckets: latency,
		}),
		compute: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "compute_seconds",
			Help: "Backend time per batch.", Buckets: latency,
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "batch_size",
			Help: "Windows per backend batch.", Buckets: prometheus.LinearBuckets(1, 1, opts.MaxBatch),
		}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: QueueDepthMetric,
			Help: "Windows admitted and not yet computing (front end or queued). Scale out on this; requests are refused at " + QueueCapacityMetric + ".",
		}),
		windows: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "windows_encoded_total",
			Help: "30 s windows encoded by the backend.",
		}),
		windowsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "windows_dropped_total",
			Help: "Queued windows dropped before compute because their request was cancelled or past its deadline.",
		}),
		audioSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "audio_seconds_total",
			Help: "Seconds of audio received in successful audio requests.",
		}),
		busySeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "backend_busy_seconds_total",
			Help: "Seconds the backend spent computing; its rate is the backend busy ratio (0 to 1).",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "requests_in_flight",
			Help: "Requests being handled.",
		}),
		uploadBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "upload_bytes",
			Help: "Bytes of the upload budget reserved by request bodies and messages.",
		}),
		decodeBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "decode_bytes",
			Help: "Bytes of the decode budget reserved by requests being decoded, encoded and answered.",
		}),
		transcriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "transcriptions_in_progress",
			Help: "Transcriptions admitted and not finished (HTTP and gRPC); refused beyond " + namespace + "_transcriptions_capacity.",
		}),
		tokens: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "decoded_tokens_total",
			Help: "Text tokens of the segments transcriptions decided; its rate is the decoder's tokens per second.",
		}),
		routes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_requests_total",
			Help: "Requests to the OpenAI-compatible HTTP routes by route and HTTP status.",
		}, []string{"route", "status"}),
	}
	transcriptionCapacity := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "transcriptions_capacity",
		Help: "Transcriptions in progress at which new ones are refused with RESOURCE_EXHAUSTED / 429.",
	})
	transcriptionCapacity.Set(float64(opts.MaxTranscriptions))
	extra := []prometheus.Collector{m.transcriptions, m.tokens, m.routes, transcriptionCapacity}
	extra = append(extra, transcriberCollectors(opts.Transcriber)...)
	capacity := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: QueueCapacityMetric,
		Help: "The queue depth (max queue) at which requests are refused with RESOURCE_EXHAUSTED / 429.",
	})
	capacity.Set(float64(opts.MaxQueue))
	backend := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "backend_info",
		Help:        "The backend running the encoder (value 1).",
		ConstLabels: prometheus.Labels{"backend": info.Backend, "model_key": info.ModelKey},
	})
	backend.Set(1)
	cs := []prometheus.Collector{
		m.requests, m.duration, m.frontend, m.queueWait, m.compute, m.batchSize, m.queueDepth,
		m.windows, m.windowsDropped, m.audioSeconds, m.busySeconds, m.inFlight, m.uploadBytes, m.decodeBytes, capacity, backend,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}
	cs = append(cs, extra...)
	if info.Kernels != "" {
		k := prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "kernels_info",
			Help:        "The CPU kernel family computing the encoder (--kernels; auto picks the best this CPU runs) and the engine string (value 1).",
			ConstLabels: prometheus.Labels{"kernels": info.Kernels, "engine": info.Engine},
		})
		k.Set(1)
		cs = append(cs, k)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("server: registering metrics: %w", err)
		}
	}
	return m, nil
}

// observeBatch records one backend call.
func (m *metrics) observeBatch(size int, compute time.Duration) {
	m.batchSize.Observe(float64(size))
	m.compute.Observe(compute.Seconds())
	m.busySeconds.Add(compute.Seconds())
	m.windows.Add(float64(size))
}

// transcriberCollectors are the metrics a Transcriber reports of itself,
// through the optional interfaces it implements.
func transcriberCollectors(t any) []prometheus.Collector {
	var out []prometheus.Collector
	if d, ok := t.(DecodeQueueDepther); ok {
		out = append(out, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: DecodeQueueDepthMetric,
			Help: "Transcription windows waiting for decode memory or being decoded (the Transcriber's count; one window per transcription at a time). Scale out on this too.",
		}, func() float64 { return float64(d.DecodeQueueDepth()) }))
	}
	if b, ok := t.(BatchStatser); ok {
		stat := func(i int) func() float64 {
			return func() float64 {
				steps, rows, largest := b.BatchStats()
				return float64([]int{steps, rows, largest}[i])
			}
		}
		out = append(out,
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: "decoder_steps_total",
				Help: "Decoder steps run; rate(decoder_rows_total)/rate(decoder_steps_total) is the mean decoder batch."}, stat(0)),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: "decoder_rows_total",
				Help: "Sequence rows the decoder steps advanced (tokens decided, beams and samples included)."}, stat(1)),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "decoder_largest_batch",
				Help: "The largest decoder step so far, in sequence rows."}, stat(2)))
	}
	return out
}

// registerTranscriber registers the metrics of a Transcriber set after New.
func (m *metrics) registerTranscriber(reg prometheus.Registerer, t any) error {
	for _, c := range transcriberCollectors(t) {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("server: registering transcriber metrics: %w", err)
		}
	}
	return nil
}
