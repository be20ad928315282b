package operator

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/xdna-whisper/xdna-whisper/encoder/server/metricnames"
)

// Config is what the operator's flags and environment decide for every WhisperEncoder.
type Config struct {
	// EncoderImage runs `whisper-encoder stage` and `serve` when a WhisperEncoder sets no spec.image.
	EncoderImage string
	// ImagePullPolicy of staging and encoder containers.
	ImagePullPolicy corev1.PullPolicy
	// ImagePullSecrets names the Secrets (in each WhisperEncoder's own namespace) that staging and
	// encoder pods pull their image with; empty leaves pulling to the pods' ServiceAccount.
	ImagePullSecrets []string
	// EncoderCommand is the whisper-encoder executable inside the image (looked up on its PATH).
	EncoderCommand string
	// CacheClaimName is the RWX PersistentVolumeClaim holding the weights cache, looked up in
	// each WhisperEncoder's own namespace.
	CacheClaimName string
	// StageActiveDeadline bounds one staging Job (activeDeadlineSeconds).
	StageActiveDeadline time.Duration
	// StageTTLAfterFinished is how long a finished staging Job is kept (ttlSecondsAfterFinished).
	StageTTLAfterFinished time.Duration
	// StageBackoffLimit is the number of pod retries inside one staging Job.
	StageBackoffLimit int32
	// RetryBaseDelay is the wait before re-running a failed staging Job; it doubles per attempt.
	RetryBaseDelay time.Duration
	// RetryMaxDelay caps the wait between staging attempts.
	RetryMaxDelay time.Duration
	// QueueDepthMetric is the pods metric a HorizontalPodAutoscaler scales on.
	QueueDepthMetric string
	// DecodeQueueDepthMetric is the pods metric of queued transcription (decode) work that the
	// HorizontalPodAutoscaler of a model that transcribes also scales on (the larger of the two
	// wins); empty scales on QueueDepthMetric alone.
	DecodeQueueDepthMetric string
	// Autoscaler is what scales a WhisperEncoder with spec.autoscaling: AutoscalerHPA (the
	// operator's HorizontalPodAutoscaler on the pods metrics above) or AutoscalerKEDA (a KEDA
	// ScaledObject whose Prometheus triggers query PrometheusAddress).
	Autoscaler string
	// PrometheusAddress is the base URL of the Prometheus that KEDA's triggers query (with
	// AutoscalerKEDA); it must scrape the encoders' /metrics with the labels namespace and service.
	PrometheusAddress string
	// StagerServiceAccount, when set, runs staging pods under this ServiceAccount (which must be
	// allowed to patch pods in its namespace) so the stager reports live progress on its own pod.
	// Empty runs them without API access and without live progress.
	StagerServiceAccount string
	// RunAsUser is the non-root user of staging pods and CPU encoder pods (the image's user).
	RunAsUser int64

	// ImageAllowList lists the images spec.image may name besides EncoderImage (an entry ending
	// in '*' is a prefix; "*" allows any). Empty: only EncoderImage.
	ImageAllowList []string
	// MaxDownloadBytes caps each file a staging Job downloads (0: the stager's default, 8 GiB).
	MaxDownloadBytes int64
	// StagingAllowHosts and StagingDenyHosts are the stager's --allow-hosts and --deny-hosts:
	// hosts, domain suffixes, IPs and CIDRs a source may (only) or may not reach.
	StagingAllowHosts, StagingDenyHosts []string
	// TLSSecretName, when set, is a kubernetes.io/tls Secret (tls.crt, tls.key; cert-manager's
	// format) in each WhisperEncoder's namespace that encoder pods serve HTTP and gRPC with.
	TLSSecretName string
	// AuthTokenSecret, when set, is a Secret in each WhisperEncoder's namespace whose key
	// "tokens" lists the bearer tokens (one per line) encoder pods require.
	AuthTokenSecret string
	// AuthMetrics also requires the token on the encoders' /metrics.
	AuthMetrics bool
}

// The autoscalers the operator can drive an encoder Deployment with (Config.Autoscaler).
const (
	// AutoscalerHPA is the operator's own HorizontalPodAutoscaler on pods metrics.
	AutoscalerHPA = "hpa"
	// AutoscalerKEDA is a KEDA ScaledObject with Prometheus triggers.
	AutoscalerKEDA = "keda"
)

// DefaultConfig returns the defaults the operator's flags start from.
func DefaultConfig() Config {
	return Config{
		ImagePullPolicy:        corev1.PullIfNotPresent,
		EncoderCommand:         "whisper-encoder",
		CacheClaimName:         "whisper-cache",
		StageActiveDeadline:    time.Hour,
		StageTTLAfterFinished:  time.Hour,
		StageBackoffLimit:      2,
		RetryBaseDelay:         30 * time.Second,
		RetryMaxDelay:          10 * time.Minute,
		QueueDepthMetric:       metricnames.QueueDepth,
		DecodeQueueDepthMetric: metricnames.DecodeQueueDepth,
		Autoscaler:             AutoscalerHPA,
		RunAsUser:              65532,
	}
}

// Validate reports the first setting the operator cannot run with.
func (c Config) Validate() error {
	switch {
	case c.EncoderImage == "":
		return fmt.Errorf("encoder image: empty, want an image reference such as ghcr.io/xdna-whisper/whisper-encoder:v0.1.0 (flag --encoder-image or WHISPER_ENCODER_IMAGE)")
	case c.CacheClaimName == "":
		return fmt.Errorf("cache claim name: empty, want the name of the RWX PersistentVolumeClaim holding the weights cache")
	case c.ImagePullPolicy != corev1.PullAlways && c.ImagePullPolicy != corev1.PullIfNotPresent && c.ImagePullPolicy != corev1.PullNever:
		return fmt.Errorf("image pull policy: %q, want Always, IfNotPresent or Never", c.ImagePullPolicy)
	case c.StageActiveDeadline < time.Second:
		return fmt.Errorf("staging deadline: %v, want at least 1s", c.StageActiveDeadline)
	case c.StageTTLAfterFinished < 0:
		return fmt.Errorf("staging Job TTL: %v, want 0 or more", c.StageTTLAfterFinished)
	case c.StageBackoffLimit < 0:
		return fmt.Errorf("staging backoff limit: %d, want 0 or more", c.StageBackoffLimit)
	case c.RetryBaseDelay <= 0 || c.RetryMaxDelay < c.RetryBaseDelay:
		return fmt.Errorf("staging retry delays: base %v, max %v, want 0 < base <= max", c.RetryBaseDelay, c.RetryMaxDelay)
	case c.QueueDepthMetric == "":
		return fmt.Errorf("queue depth metric: empty, want the encoder's queue-depth gauge name")
	case c.EncoderCommand == "":
		return fmt.Errorf("encoder command: empty, want the whisper-encoder executable in the image")
	}
	if err := c.validateAutoscaler(); err != nil {
		return err
	}
	if err := c.validateSecurity(); err != nil {
		return err
	}
	return validatePullSecrets(c.ImagePullSecrets)
}

// validateAutoscaler checks the autoscaler kind and, for KEDA, the Prometheus address.
func (c Config) validateAutoscaler() error {
	switch c.Autoscaler {
	case AutoscalerHPA:
		return nil
	case AutoscalerKEDA:
	default:
		return fmt.Errorf("autoscaler: %q, want %q or %q (--autoscaler or WHISPER_AUTOSCALER)", c.Autoscaler, AutoscalerHPA, AutoscalerKEDA)
	}
	u, err := url.Parse(c.PrometheusAddress)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return fmt.Errorf("prometheus address: %q, want an http(s) URL without credentials such as http://prometheus.monitoring:9090 "+
			"(--prometheus-address or WHISPER_PROMETHEUS_ADDRESS; needed by --autoscaler=keda)", redactedURL(c.PrometheusAddress))
	}
	return nil
}

// redactedURL is s without any user:password part, for error messages.
func redactedURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		if err != nil && strings.Contains(s, "@") {
			return "(unparsable URL)"
		}
		return s
	}
	return u.Redacted()
}

// validatePullSecrets checks that every image pull secret is a Secret name, named once.
func validatePullSecrets(names []string) error {
	for i, name := range names {
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			return fmt.Errorf("image pull secret %d %q: %s; want a Secret name (--image-pull-secrets or WHISPER_IMAGE_PULL_SECRETS)", i+1, name, strings.Join(errs, "; "))
		}
		if slices.Contains(names[:i], name) {
			return fmt.Errorf("image pull secret %d %q: named twice, want each Secret once", i+1, name)
		}
	}
	return nil
}
