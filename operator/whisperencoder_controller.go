// Package operator holds the WhisperEncoder reconciler and the manager that runs it: it stages a
// model source once per namespace into the shared weights cache with a Job, then serves the staged
// weights from a Deployment, a Service and (optionally) a HorizontalPodAutoscaler.
package operator

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
)

// indexSourceHash indexes WhisperEncoders by sourceHash, to map a source's Job, pods and record
// back to every WhisperEncoder using it.
const indexSourceHash = "whisper.xdna.io/source-hash"

// Reconciler reconciles WhisperEncoders.
type Reconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads from the API server uncached: the serving Secrets' existence, which
	// the operator may only get by name (no list or watch of Secrets). Nil skips that check.
	APIReader client.Reader
	// Recorder records an event on each phase change; nil records none.
	Recorder events.EventRecorder
	// Config is the operator-wide configuration.
	Config Config
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// +kubebuilder:rbac:groups=whisper.xdna.io,resources=whisperencoders,verbs=get;list;watch
// +kubebuilder:rbac:groups=whisper.xdna.io,resources=whisperencoders/status,verbs=get;update
// +kubebuilder:rbac:groups=whisper.xdna.io,resources=whisperencoders/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=core,resources=services,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=core,resources=configmaps,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=core,resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=core,resources=persistentvolumeclaims,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=resource.k8s.io,resources=resourceclaimtemplates,verbs=get;list;watch;create;patch;delete

// Reconcile brings one WhisperEncoder's children in line with its spec: Get → staging → serving
// (once staged) → status, written once if it changed. Long work runs in the staging Job, never
// here. There is no finalizer: everything the WhisperEncoder owns carries owner references, and
// cache entries intentionally outlive it.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var we whisperv1.WhisperEncoder
	if err := r.Client.Get(ctx, req.NamespacedName, &we); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !we.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	var stg stagingView
	var err error
	if ierr := r.Config.imageAllowed(we.Spec.Image); ierr != nil {
		stg = refusedImage(ierr)
	} else if stg, err = r.reconcileStaging(ctx, &we); err != nil {
		return reconcile.Result{}, err
	}
	var wl workloadView
	if stg.State == stagingStaged {
		if wl, err = r.reconcileWorkload(ctx, &we, stg.Result); err != nil {
			return reconcile.Result{}, err
		}
	}
	st := computeStatus(&we, stg, wl, metav1.NewTime(r.now().Truncate(time.Second)))
	if err := r.writeStatus(ctx, &we, st); err != nil {
		return reconcile.Result{}, err
	}
	requeue := stg.RequeueAfter
	if wl.DRAUnavailable != "" && (requeue == 0 || requeue > draRecheck) {
		requeue = draRecheck // nothing is watched that would say the API has come
	}
	return reconcile.Result{RequeueAfter: requeue}, nil
}

// draRecheck is how often a WhisperEncoder asking for DRA on a cluster without it is looked at again.
const draRecheck = time.Minute

func (r *Reconciler) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}

// SetupWithManager registers the reconciler, its index and its watches with mgr.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &whisperv1.WhisperEncoder{}, indexSourceHash,
		func(o client.Object) []string { return []string{sourceHash(o.(*whisperv1.WhisperEncoder))} }); err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("whisperencoder").
		For(&whisperv1.WhisperEncoder{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Watches(&batchv1.Job{}, handler.EnqueueRequestsFromMapFunc(r.bySource)).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.bySource)).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.byPod)).
		Watches(&corev1.PersistentVolumeClaim{}, handler.EnqueueRequestsFromMapFunc(r.byNamespace))
	if r.Config.Autoscaler == AutoscalerKEDA {
		b = b.Owns(newScaledObject()) // needs KEDA's CRD; with hpa the operator never touches one
	}
	return b.Complete(r)
}

// bySource maps a per-source object (staging Job, staging pod, weights record) to every
// WhisperEncoder of its namespace using that source.
func (r *Reconciler) bySource(ctx context.Context, o client.Object) []reconcile.Request {
	hash := o.GetLabels()[labelSourceHash]
	if hash == "" {
		return nil
	}
	var list whisperv1.WhisperEncoderList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexSourceHash: hash}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "map source to WhisperEncoders", "namespace", o.GetNamespace(), "sourceHash", hash)
		return nil
	}
	return requests(list.Items)
}

// byPod maps an encoder pod to its WhisperEncoder and a staging pod to its source's users.
func (r *Reconciler) byPod(ctx context.Context, o client.Object) []reconcile.Request {
	if name := o.GetLabels()[labelEncoder]; name != "" {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
	}
	return r.bySource(ctx, o)
}

// byNamespace maps the cache claim to every WhisperEncoder of its namespace.
func (r *Reconciler) byNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	if o.GetName() != r.Config.CacheClaimName {
		return nil
	}
	var list whisperv1.WhisperEncoderList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "map cache claim to WhisperEncoders", "namespace", o.GetNamespace())
		return nil
	}
	return requests(list.Items)
}

func requests(items []whisperv1.WhisperEncoder) []reconcile.Request {
	out := make([]reconcile.Request, len(items))
	for i := range items {
		out[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&items[i])}
	}
	return out
}
