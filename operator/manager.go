package operator

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
)

// Options configure the manager process around the reconciler.
type Options struct {
	// Config is the reconciler's configuration.
	Config Config
	// WatchNamespaces limits the operator to these namespaces; empty watches all.
	WatchNamespaces []string
	// MetricsAddr serves /metrics ("0" disables).
	MetricsAddr string
	// ProbeAddr serves /healthz and /readyz ("0" disables).
	ProbeAddr string
	// LeaderElection makes replicas of the operator elect one active leader through a Lease.
	LeaderElection bool
	// LeaderElectionNamespace holds the Lease; empty means the operator pod's own namespace.
	LeaderElectionNamespace string
	// SkipControllerNameValidation allows several managers in one process (tests).
	SkipControllerNameValidation bool
}

// LeaderElectionID names the operator's Lease.
const LeaderElectionID = "whisper-operator.whisper.xdna.io"

// Scheme knows the built-in kinds and WhisperEncoder.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(whisperv1.AddToScheme(s))
	return s
}

// NewManager builds a manager whose caches hold only what the operator needs: WhisperEncoders,
// objects labelled as managed by it, and the cache claims of the configured name.
func NewManager(cfg *rest.Config, opts Options) (ctrl.Manager, error) {
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	managed := labels.SelectorFromSet(ManagedByLabel)
	cacheOpts := cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:                            {Label: managed},
			&batchv1.Job{}:                           {Label: managed},
			&corev1.ConfigMap{}:                      {Label: managed},
			&appsv1.Deployment{}:                     {Label: managed},
			&corev1.Service{}:                        {Label: managed},
			&autoscalingv2.HorizontalPodAutoscaler{}: {Label: managed},
			&policyv1.PodDisruptionBudget{}:          {Label: managed},
			&corev1.PersistentVolumeClaim{}:          {Field: fields.OneTermEqualSelector("metadata.name", opts.Config.CacheClaimName)},
		},
	}
	if opts.Config.Autoscaler == AutoscalerKEDA {
		cacheOpts.ByObject[newScaledObject()] = cache.ByObject{Label: managed}
	}
	if len(opts.WatchNamespaces) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range opts.WatchNamespaces {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        Scheme(),
		Cache:                         cacheOpts,
		Metrics:                       metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress:        opts.ProbeAddr,
		LeaderElection:                opts.LeaderElection,
		LeaderElectionID:              LeaderElectionID,
		LeaderElectionNamespace:       opts.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		Controller:                    config.Controller{SkipNameValidation: &opts.SkipControllerNameValidation},
	})
	if err != nil {
		return nil, fmt.Errorf("new manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, nil
}

// Setup adds the WhisperEncoder reconciler and the cache-entry metrics to mgr.
func Setup(ctx context.Context, mgr ctrl.Manager, cfg Config) error {
	r := &Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("whisper-operator"), Config: cfg}
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("set up WhisperEncoder controller: %w", err)
	}
	if err := metrics.Registry.Register(NewCacheCollector(mgr.GetClient())); err != nil {
		return fmt.Errorf("register cache metrics: %w", err)
	}
	return nil
}
