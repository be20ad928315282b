// Command whisper-operator runs the WhisperEncoder controller: it stages each model source once
// per namespace into the shared weights cache and serves it from encoder pods.
//
// Every flag has an environment variable fallback (shown in --help), so a Helm chart can set
// either.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/xdna-whisper/xdna-whisper/internal/version"
	"github.com/xdna-whisper/xdna-whisper/operator"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// settings are the parsed command line.
type settings struct {
	opts        operator.Options
	zap         zap.Options
	showVersion bool
}

// parse reads flags, falling back to environment variables, then checks the result.
func parse(args []string, getenv func(string) string, stderr io.Writer) (settings, error) {
	s := settings{opts: operator.Options{Config: operator.DefaultConfig()}}
	c := &s.opts.Config
	fs := flag.NewFlagSet("whisper-operator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var pullPolicy, pullSecrets, namespaces, imageAllow, allowHosts, denyHosts string
	var bad []error
	dur := func(p *time.Duration, name, envName, usage string) {
		d := *p
		if v := getenv(envName); v != "" {
			var err error
			if d, err = time.ParseDuration(v); err != nil {
				bad = append(bad, fmt.Errorf("environment %s=%q: want a duration such as 1h or 30s", envName, v))
			}
		}
		fs.DurationVar(p, name, d, usage+" (env "+envName+")")
	}
	integer := func(p *int64, name, envName, usage string) {
		n := *p
		if v := getenv(envName); v != "" {
			var err error
			if n, err = strconv.ParseInt(v, 10, 64); err != nil {
				bad = append(bad, fmt.Errorf("environment %s=%q: want an integer", envName, v))
			}
		}
		fs.Int64Var(p, name, n, usage+" (env "+envName+")")
	}
	fs.BoolVar(&s.showVersion, "version", false, "print the version and exit")
	fs.StringVar(&c.EncoderImage, "encoder-image", env("WHISPER_ENCODER_IMAGE", ""), "default whisper-encoder image for staging Jobs and encoder pods (env WHISPER_ENCODER_IMAGE)")
	fs.StringVar(&pullPolicy, "image-pull-policy", env("WHISPER_IMAGE_PULL_POLICY", string(c.ImagePullPolicy)), "Always, IfNotPresent or Never (env WHISPER_IMAGE_PULL_POLICY)")
	fs.StringVar(&pullSecrets, "image-pull-secrets", env("WHISPER_IMAGE_PULL_SECRETS", ""), "comma-separated image pull Secrets of staging and encoder pods, in each WhisperEncoder's namespace (env WHISPER_IMAGE_PULL_SECRETS)")
	fs.StringVar(&c.EncoderCommand, "encoder-command", env("WHISPER_ENCODER_COMMAND", c.EncoderCommand), "whisper-encoder executable in the image (env WHISPER_ENCODER_COMMAND)")
	fs.StringVar(&c.CacheClaimName, "cache-claim", env("WHISPER_CACHE_CLAIM", c.CacheClaimName), "name of the RWX weights-cache PersistentVolumeClaim in each WhisperEncoder's namespace (env WHISPER_CACHE_CLAIM)")
	fs.StringVar(&namespaces, "watch-namespaces", env("WATCH_NAMESPACES", ""), "comma-separated namespaces to watch; empty watches all (env WATCH_NAMESPACES)")
	dur(&c.StageActiveDeadline, "stage-deadline", "WHISPER_STAGE_DEADLINE", "activeDeadlineSeconds of a staging Job")
	dur(&c.StageTTLAfterFinished, "stage-ttl", "WHISPER_STAGE_TTL", "ttlSecondsAfterFinished of a staging Job")
	dur(&c.RetryBaseDelay, "stage-retry-base", "WHISPER_STAGE_RETRY_BASE", "wait before re-running a failed staging Job, doubled per attempt")
	dur(&c.RetryMaxDelay, "stage-retry-max", "WHISPER_STAGE_RETRY_MAX", "longest wait between staging attempts")
	backoff := int64(c.StageBackoffLimit)
	integer(&backoff, "stage-backoff-limit", "WHISPER_STAGE_BACKOFF_LIMIT", "pod retries inside one staging Job")
	integer(&c.RunAsUser, "run-as-user", "WHISPER_RUN_AS_USER", "non-root UID of staging pods and CPU encoder pods")
	fs.StringVar(&c.StagerServiceAccount, "stager-service-account", env("WHISPER_STAGER_SERVICE_ACCOUNT", ""), "ServiceAccount (in each namespace) that may patch pods, for live staging progress; empty: none (env WHISPER_STAGER_SERVICE_ACCOUNT)")
	fs.StringVar(&c.QueueDepthMetric, "queue-depth-metric", env("WHISPER_QUEUE_DEPTH_METRIC", c.QueueDepthMetric), "pods metric the HorizontalPodAutoscaler scales on (env WHISPER_QUEUE_DEPTH_METRIC)")
	fs.StringVar(&c.DecodeQueueDepthMetric, "decode-queue-depth-metric", env("WHISPER_DECODE_QUEUE_DEPTH_METRIC", c.DecodeQueueDepthMetric), "pods metric of queued transcription work the HorizontalPodAutoscaler of a model that transcribes also scales on; empty: none (env WHISPER_DECODE_QUEUE_DEPTH_METRIC)")
	fs.StringVar(&c.Autoscaler, "autoscaler", env("WHISPER_AUTOSCALER", c.Autoscaler), "what scales a WhisperEncoder with spec.autoscaling: hpa (a HorizontalPodAutoscaler on the pods metrics) or keda (a KEDA ScaledObject querying --prometheus-address) (env WHISPER_AUTOSCALER)")
	fs.StringVar(&c.PrometheusAddress, "prometheus-address", env("WHISPER_PROMETHEUS_ADDRESS", ""), "base URL of the Prometheus KEDA's triggers query, e.g. http://prometheus.monitoring:9090 (--autoscaler=keda) (env WHISPER_PROMETHEUS_ADDRESS)")
	fs.StringVar(&imageAllow, "image-allow-list", env("WHISPER_IMAGE_ALLOW_LIST", ""), "comma-separated images spec.image may name besides --encoder-image (an entry ending in '*' is a prefix, \"*\" allows any); empty: only --encoder-image (env WHISPER_IMAGE_ALLOW_LIST)")
	integer(&c.MaxDownloadBytes, "max-download-bytes", "WHISPER_MAX_DOWNLOAD_BYTES", "cap of each file a staging Job downloads; 0: the stager's default (8 GiB)")
	fs.StringVar(&allowHosts, "staging-allow-hosts", env("WHISPER_STAGING_ALLOW_HOSTS", ""), "comma-separated hosts, .domain suffixes, IPs and CIDRs staging sources may only reach (they override the denials) (env WHISPER_STAGING_ALLOW_HOSTS)")
	fs.StringVar(&denyHosts, "staging-deny-hosts", env("WHISPER_STAGING_DENY_HOSTS", ""), "comma-separated hosts, .domain suffixes, IPs and CIDRs staging sources may not reach, besides link-local and cloud metadata addresses (env WHISPER_STAGING_DENY_HOSTS)")
	fs.StringVar(&c.TLSSecretName, "tls-secret", env("WHISPER_TLS_SECRET", ""), "kubernetes.io/tls Secret (tls.crt, tls.key) in each WhisperEncoder's namespace that encoders serve HTTP and gRPC with; empty: plain text (env WHISPER_TLS_SECRET)")
	fs.StringVar(&c.AuthTokenSecret, "auth-token-secret", env("WHISPER_AUTH_TOKEN_SECRET", ""), "Secret in each WhisperEncoder's namespace whose key \"tokens\" lists the bearer tokens encoders require; empty: no auth (env WHISPER_AUTH_TOKEN_SECRET)")
	authMetrics, _ := strconv.ParseBool(env("WHISPER_AUTH_METRICS", "false"))
	fs.BoolVar(&c.AuthMetrics, "auth-metrics", authMetrics, "also require the token on the encoders' /metrics (env WHISPER_AUTH_METRICS)")
	fs.StringVar(&s.opts.MetricsAddr, "metrics-bind-address", env("METRICS_BIND_ADDRESS", ":8080"), "address of /metrics, \"0\" disables (env METRICS_BIND_ADDRESS)")
	fs.StringVar(&s.opts.ProbeAddr, "health-probe-bind-address", env("HEALTH_PROBE_BIND_ADDRESS", ":8081"), "address of /healthz and /readyz (env HEALTH_PROBE_BIND_ADDRESS)")
	leader, _ := strconv.ParseBool(env("LEADER_ELECT", "false"))
	fs.BoolVar(&s.opts.LeaderElection, "leader-elect", leader, "elect one active operator through a Lease (env LEADER_ELECT)")
	fs.StringVar(&s.opts.LeaderElectionNamespace, "leader-election-namespace", env("POD_NAMESPACE", ""), "namespace of the Lease; empty means the pod's own (env POD_NAMESPACE)")
	s.zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	if fs.NArg() > 0 {
		return s, fmt.Errorf("unexpected arguments %q: whisper-operator takes only flags", fs.Args())
	}
	if s.showVersion {
		return s, nil
	}
	if len(bad) > 0 {
		return s, errors.Join(bad...)
	}
	if backoff < 0 || backoff > 1000 {
		return s, fmt.Errorf("--stage-backoff-limit %d: want 0 to 1000", backoff)
	}
	c.StageBackoffLimit = int32(backoff)
	c.ImagePullPolicy = corev1.PullPolicy(pullPolicy)
	c.ImagePullSecrets = commaList(pullSecrets)
	s.opts.WatchNamespaces = commaList(namespaces)
	c.ImageAllowList = commaList(imageAllow)
	c.StagingAllowHosts, c.StagingDenyHosts = commaList(allowHosts), commaList(denyHosts)
	return s, c.Validate()
}

// commaList splits a comma-separated flag value into its non-empty, trimmed items.
func commaList(v string) []string {
	var items []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	s, err := parse(args, getenv, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "whisper-operator: %v\n", err)
		return 2
	case s.showVersion:
		fmt.Fprintln(stdout, version.String("whisper-operator"))
		return 0
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&s.zap)))
	log := ctrl.Log.WithName("whisper-operator")
	log.Info("starting", "version", version.String("whisper-operator"), "encoderImage", s.opts.Config.EncoderImage,
		"cacheClaim", s.opts.Config.CacheClaimName, "watchNamespaces", s.opts.WatchNamespaces)
	restCfg, err := ctrl.GetConfig()
	if err != nil {
		fmt.Fprintf(stderr, "whisper-operator: kubeconfig: %v\n", err)
		return 1
	}
	ctx := ctrl.SetupSignalHandler()
	mgr, err := operator.NewManager(restCfg, s.opts)
	if err == nil {
		err = operator.Setup(ctx, mgr, s.opts.Config)
	}
	if err == nil {
		err = mgr.Start(ctx)
	}
	if err != nil {
		fmt.Fprintf(stderr, "whisper-operator: %v\n", err)
		return 1
	}
	return 0
}
