package operator

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xdna-whisper/xdna-whisper/api/report"
	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
	"github.com/xdna-whisper/xdna-whisper/internal/redact"
)

// Staging: one Job per source and namespace runs `whisper-encoder stage` with the cache claim
// mounted; its pod writes a JSON result to its termination message. The operator copies a
// successful result into a per-source record ConfigMap, so "already staged" survives the Job's
// TTL and never needs a second Job.

const (
	cacheMount  = "/cache"
	sourceMount = "/source"
	tmpMount    = "/tmp"
	// maxMessage bounds the stager's or encoder's message copied into a condition.
	maxMessage = 1024
	// stagerTokenEnv is the environment variable `whisper-encoder stage` reads its Hugging Face
	// token from.
	stagerTokenEnv = "HF_TOKEN"
)

// stagingState is where the staging of one source stands.
type stagingState int

const (
	stagingClaimMissing stagingState = iota
	stagingNoJob
	stagingPending
	stagingRunning
	stagingFailed
	stagingStaged
	stagingRefused // spec.image is not allowed: nothing is created
)

// stagingAction is the one write the staging step needs next, if any.
type stagingAction int

const (
	actionNone stagingAction = iota
	actionCreateJob
	actionRetryJob
	actionRecord
)

// stagingInput is what the staging step reads from the API.
type stagingInput struct {
	Hash       string
	ClaimFound bool
	Record     *corev1.ConfigMap
	Job        *batchv1.Job
	Pods       []corev1.Pod // pods of Job (same UID)
	RetryToken string       // the WhisperEncoder's retry annotation
	RetryKey   string       // the Job annotation remembering this WhisperEncoder's last retry token
	Now        time.Time
}

// stagingView is the pure verdict on a stagingInput.
type stagingView struct {
	State      stagingState
	Action     stagingAction
	Result     report.StageResult // when staged: from the record or the finished pod
	Message    string
	Job        string
	Attempt    int32
	StartedAt  *metav1.Time
	RetryAt    *metav1.Time
	Phase      string
	BytesDone  int64
	BytesTotal int64
	// RequeueAfter asks for a reconcile when nothing else will trigger one (a retry deadline).
	RequeueAfter time.Duration
}

// observeStaging decides the staging state and next action for one source.
func observeStaging(in stagingInput, cfg Config) stagingView {
	v := stagingView{Job: stagingJobName(in.Hash), Attempt: 1}
	if !in.ClaimFound {
		v.State = stagingClaimMissing
		v.Message = fmt.Sprintf("PersistentVolumeClaim %q not found in this namespace: the weights cache must be a ReadWriteMany claim of that name (the Helm chart creates it in each watched namespace)", cfg.CacheClaimName)
		return v
	}
	if in.Record != nil {
		if r := report.ParseStageResult(in.Record.Data[recordResultKey]); !r.Failed() {
			v.State, v.Result = stagingStaged, r
			return v
		}
	}
	if in.Job == nil {
		v.State, v.Action = stagingNoJob, actionCreateJob
		v.Message = "creating staging Job " + v.Job
		return v
	}
	job := in.Job
	v.Attempt = jobAttempt(job)
	v.StartedAt = job.Status.StartTime
	switch {
	case jobCondition(job, batchv1.JobComplete) != nil:
		r := podResult(in.Pods, corev1.PodSucceeded)
		if !r.Failed() {
			v.State, v.Action, v.Result = stagingStaged, actionRecord, r
			return v
		}
		return failedStaging(v, in, cfg, fmt.Sprintf("staging Job %s succeeded but left no usable result: %s", job.Name, r.Error), jobCondition(job, batchv1.JobComplete).LastTransitionTime)
	case jobCondition(job, batchv1.JobFailed) != nil:
		c := jobCondition(job, batchv1.JobFailed)
		r := podResult(in.Pods, corev1.PodFailed)
		msg := r.Error
		if r.Reason == report.CodeNoMessage {
			msg = fmt.Sprintf("staging Job %s failed: %s: %s", job.Name, c.Reason, c.Message)
		}
		return failedStaging(v, in, cfg, msg, c.LastTransitionTime)
	}
	v.State = stagingPending
	v.Message = fmt.Sprintf("staging Job %s (attempt %d) is waiting for its pod to start", job.Name, v.Attempt)
	for i := range in.Pods {
		if in.Pods[i].Status.Phase == corev1.PodRunning {
			v.State = stagingRunning
			v.Message = fmt.Sprintf("staging Job %s (attempt %d) is downloading and converting %s", job.Name, v.Attempt, redact.URL(job.Annotations[annotationSource]))
			if p, ok := report.ParseProgress(in.Pods[i].Annotations[report.ProgressAnnotation]); ok {
				v.Phase, v.BytesDone, v.BytesTotal = p.Phase, p.BytesDone, p.BytesTotal
			}
		}
	}
	return v
}

// failedStaging fills in a failed staging and when (or whether now) it is retried.
func failedStaging(v stagingView, in stagingInput, cfg Config, msg string, failedAt metav1.Time) stagingView {
	v.State = stagingFailed
	v.Message = truncate(redact.Text(msg), maxMessage)
	if in.RetryToken != "" && in.RetryToken != in.Job.Annotations[in.RetryKey] {
		v.Action = actionRetryJob
		return v
	}
	at := failedAt.Add(retryDelay(v.Attempt, cfg))
	v.RetryAt = &metav1.Time{Time: at}
	if !in.Now.Before(at) {
		v.Action = actionRetryJob
		return v
	}
	v.RequeueAfter = at.Sub(in.Now)
	return v
}

// retryDelay is base·2^(attempt−1), capped at max.
func retryDelay(attempt int32, cfg Config) time.Duration {
	d := cfg.RetryBaseDelay
	for i := int32(1); i < attempt && d < cfg.RetryMaxDelay; i++ {
		d *= 2
	}
	return min(d, cfg.RetryMaxDelay)
}

// podResult is the stage container's result from the newest pod in the given phase
// (report.CodeNoMessage when no such pod has terminated).
func podResult(pods []corev1.Pod, phase corev1.PodPhase) report.StageResult {
	var newest *corev1.ContainerStateTerminated
	for i := range pods {
		if pods[i].Status.Phase != phase {
			continue
		}
		for _, cs := range pods[i].Status.ContainerStatuses {
			if cs.Name == stageContainer && cs.State.Terminated != nil {
				t := cs.State.Terminated
				if newest == nil || newest.FinishedAt.Before(&t.FinishedAt) {
					newest = t
				}
			}
		}
	}
	if newest == nil {
		return report.ParseStageResult("")
	}
	return report.ParseStageResult(newest.Message)
}

func jobCondition(job *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range job.Status.Conditions {
		if c := &job.Status.Conditions[i]; c.Type == t && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

func jobAttempt(job *batchv1.Job) int32 {
	n, err := strconv.ParseInt(job.Annotations[annotationTry], 10, 32)
	if err != nil || n < 1 {
		return 1
	}
	return int32(n)
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// stagingJob builds the Job that stages we's source into the namespace's cache claim.
// retries carries the retry tokens already honoured (retryAnnotation keys), so that each
// WhisperEncoder's bump of its retry annotation re-runs a failed Job exactly once.
func stagingJob(we *whisperv1.WhisperEncoder, hash string, attempt int32, retries map[string]string, cfg Config) *batchv1.Job {
	src := we.Spec.Model.Source
	args := []string{"stage", "--source", stagerSource(src), "--cache", cacheMount, "--result-file", corev1.TerminationMessagePathDefault}
	if src.SHA256 != "" {
		args = append(args, "--sha256", src.SHA256)
	}
	args = append(args, stagerPolicyArgs(cfg)...)
	volumes := []corev1.Volume{
		claimVolume("cache", cfg.CacheClaimName, false),
		{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	mounts := []corev1.VolumeMount{{Name: "cache", MountPath: cacheMount}, {Name: "tmp", MountPath: tmpMount}}
	if src.PVC != nil {
		volumes = append(volumes, claimVolume("source", src.PVC.ClaimName, true))
		mounts = append(mounts, corev1.VolumeMount{Name: "source", MountPath: sourceMount, ReadOnly: true})
	}
	env := []corev1.EnvVar{{Name: "TMPDIR", Value: tmpMount}}
	if s := we.Spec.Defaulted().Model.CredentialsSecret; s != nil {
		env = append(env, corev1.EnvVar{Name: stagerTokenEnv, ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: s.Name}, Key: s.Key},
		}})
	}
	podSpecExtras := func(*corev1.PodSpec) {}
	if sa := cfg.StagerServiceAccount; sa != "" {
		env = append(env, corev1.EnvVar{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"},
		}})
		args = append(args, "--report-pod", "$(POD_NAME)")
		podSpecExtras = func(ps *corev1.PodSpec) {
			ps.ServiceAccountName, ps.AutomountServiceAccountToken = sa, ptr.To(true)
		}
	}
	labels := stagingLabels(hash, componentStaging)
	annotations := map[string]string{
		annotationSource: sourceString(src),
		annotationTry:    strconv.Itoa(int(attempt)),
	}
	for k, v := range retries {
		annotations[k] = v
	}
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:            stagingJobName(hash),
			Namespace:       we.Namespace,
			Labels:          labels,
			Annotations:     annotations,
			OwnerReferences: []metav1.OwnerReference{sharedOwnerRef(we)},
		},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To(cfg.StageBackoffLimit),
			ActiveDeadlineSeconds:   ptr.To(int64(cfg.StageActiveDeadline / time.Second)),
			TTLSecondsAfterFinished: ptr.To(int32(cfg.StageTTLAfterFinished / time.Second)),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{annotationSource: sourceString(src)}},
				Spec: corev1.PodSpec{
					RestartPolicy:                 corev1.RestartPolicyNever,
					AutomountServiceAccountToken:  ptr.To(false),
					EnableServiceLinks:            ptr.To(false),
					SecurityContext:               restrictedPodSecurity(cfg.RunAsUser),
					ImagePullSecrets:              pullSecrets(cfg),
					TerminationGracePeriodSeconds: ptr.To(int64(30)),
					Volumes:                       volumes,
					Containers: []corev1.Container{{
						Name:                     stageContainer,
						Image:                    image(we, cfg),
						ImagePullPolicy:          cfg.ImagePullPolicy,
						Command:                  []string{cfg.EncoderCommand},
						Args:                     args,
						Env:                      env,
						VolumeMounts:             mounts,
						TerminationMessagePath:   corev1.TerminationMessagePathDefault,
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
						SecurityContext:          restrictedContainerSecurity(),
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
						},
					}},
				},
			},
		},
	}
	podSpecExtras(&job.Spec.Template.Spec)
	return job
}

// stagerSource is the --source argument: the URL, or the file under the read-only source mount.
func stagerSource(src whisperv1.ModelSource) string {
	if src.PVC != nil {
		return sourceMount + "/" + strings.TrimPrefix(src.PVC.Path, "./")
	}
	return src.URL
}

// weightsRecord builds the per-source ConfigMap remembering a successful staging. It has no
// owner: it describes cache content, which outlives any one WhisperEncoder.
func weightsRecord(we *whisperv1.WhisperEncoder, hash string, r report.StageResult) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:        recordName(hash),
			Namespace:   we.Namespace,
			Labels:      stagingLabels(hash, componentRecord),
			Annotations: map[string]string{annotationSource: sourceString(we.Spec.Model.Source), annotationKey: r.Key},
		},
		Data: map[string]string{recordResultKey: string(r.Marshal())},
	}
}

// sharedOwnerRef makes we one of several owners of a per-source object, so the garbage collector
// deletes it only after the last WhisperEncoder using it is gone.
func sharedOwnerRef(we *whisperv1.WhisperEncoder) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: whisperv1.GroupVersion.String(),
		Kind:       "WhisperEncoder",
		Name:       we.Name,
		UID:        we.UID,
	}
}

func claimVolume(name, claim string, readOnly bool) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: readOnly},
	}}
}

// pullSecrets references cfg.ImagePullSecrets from a pod spec; nil without any, so that objects
// built without them are what they were before the setting existed.
func pullSecrets(cfg Config) []corev1.LocalObjectReference {
	var refs []corev1.LocalObjectReference
	for _, name := range cfg.ImagePullSecrets {
		refs = append(refs, corev1.LocalObjectReference{Name: name})
	}
	return refs
}

func image(we *whisperv1.WhisperEncoder, cfg Config) string {
	if we.Spec.Image != "" {
		return we.Spec.Image
	}
	return cfg.EncoderImage
}

// retryAnnotation is the Job annotation holding the last retry token of we that was honoured.
func retryAnnotation(we *whisperv1.WhisperEncoder) string {
	return "retry.whisper.xdna.io/" + string(we.UID)
}

// retryTokens are the honoured retry tokens of the previous Job (if any) plus the current one.
func retryTokens(prev *batchv1.Job, in stagingInput) map[string]string {
	out := map[string]string{}
	if prev != nil {
		for k, v := range prev.Annotations {
			if strings.HasPrefix(k, "retry.whisper.xdna.io/") {
				out[k] = v
			}
		}
	}
	if in.RetryToken != "" {
		out[in.RetryKey] = in.RetryToken
	}
	return out
}

// hasOwner reports whether obj lists we among its owners.
func hasOwner(obj metav1.Object, we *whisperv1.WhisperEncoder) bool {
	for _, o := range obj.GetOwnerReferences() {
		if o.UID == we.UID {
			return true
		}
	}
	return false
}

// reconcileStaging reads the source's cache claim, record, Job and pods, and makes the one write
// observeStaging asks for.
func (r *Reconciler) reconcileStaging(ctx context.Context, we *whisperv1.WhisperEncoder) (stagingView, error) {
	hash := sourceHash(we)
	in := stagingInput{Hash: hash, RetryToken: we.Annotations[whisperv1.AnnotationRetryStaging], RetryKey: retryAnnotation(we), Now: r.now()}
	var err error
	if in.ClaimFound, err = r.exists(ctx, we.Namespace, r.Config.CacheClaimName, &corev1.PersistentVolumeClaim{}); err != nil {
		return stagingView{}, err
	}
	if in.ClaimFound {
		if in.Record, err = getOptional(ctx, r.Client, we.Namespace, recordName(hash), &corev1.ConfigMap{}); err != nil {
			return stagingView{}, err
		}
		if in.Record == nil || report.ParseStageResult(in.Record.Data[recordResultKey]).Failed() {
			if err := r.readJob(ctx, we.Namespace, hash, &in); err != nil {
				return stagingView{}, err
			}
		}
	}
	v := observeStaging(in, r.Config)
	switch v.Action {
	case actionCreateJob:
		err = r.createJob(ctx, stagingJob(we, hash, 1, retryTokens(nil, in), r.Config))
	case actionRetryJob:
		err = r.retryJob(ctx, we, in)
		v.Attempt++
		v.State, v.Message, v.RetryAt, v.StartedAt, v.RequeueAfter = stagingNoJob, "retrying staging: "+v.Message, nil, nil, 0
	case actionRecord:
		_, err = apply(ctx, r.Client, weightsRecord(we, hash, v.Result), nil) // also puts back a record edited into garbage
	}
	if err != nil {
		return v, fmt.Errorf("staging %s/%s: %w", we.Namespace, v.Job, err)
	}
	if in.Job != nil && v.Action == actionNone && !hasOwner(in.Job, we) {
		err = r.addJobOwner(ctx, in.Job, we)
	}
	return v, err
}

// readJob fills in the source's staging Job and that Job's pods.
func (r *Reconciler) readJob(ctx context.Context, ns, hash string, in *stagingInput) error {
	var err error
	if in.Job, err = getOptional(ctx, r.Client, ns, stagingJobName(hash), &batchv1.Job{}); err != nil || in.Job == nil {
		return err
	}
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(ns),
		client.MatchingLabels{labelSourceHash: hash, labelJobUID: string(in.Job.UID)}); err != nil {
		return fmt.Errorf("list staging pods of Job %s/%s: %w", ns, in.Job.Name, err)
	}
	in.Pods = pods.Items
	sort.Slice(in.Pods, func(i, j int) bool { return in.Pods[i].Name < in.Pods[j].Name })
	return nil
}

func (r *Reconciler) createJob(ctx context.Context, job *batchv1.Job) error {
	if err := r.Client.Create(ctx, job); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create Job: %w", err)
	}
	return nil
}

// retryJob deletes the failed Job (only that very Job: a UID precondition guards against a stale
// cache) and creates the next attempt under the same name.
func (r *Reconciler) retryJob(ctx context.Context, we *whisperv1.WhisperEncoder, in stagingInput) error {
	err := r.Client.Delete(ctx, in.Job, client.PropagationPolicy(metav1.DeletePropagationBackground),
		client.Preconditions{UID: ptr.To(in.Job.UID)})
	switch {
	case apierrors.IsConflict(err):
		return nil // our cache was stale: the Job was already replaced
	case err != nil && !apierrors.IsNotFound(err):
		return fmt.Errorf("delete failed Job: %w", err)
	}
	next := stagingJob(we, in.Hash, jobAttempt(in.Job)+1, retryTokens(in.Job, in), r.Config)
	next.OwnerReferences = in.Job.OwnerReferences
	if !hasOwner(next, we) {
		next.OwnerReferences = append(next.OwnerReferences, sharedOwnerRef(we))
	}
	return r.createJob(ctx, next)
}

// addJobOwner adds we to the owners of a Job another WhisperEncoder of the same source created.
func (r *Reconciler) addJobOwner(ctx context.Context, job *batchv1.Job, we *whisperv1.WhisperEncoder) error {
	patched := job.DeepCopy()
	patched.OwnerReferences = append(patched.OwnerReferences, sharedOwnerRef(we))
	if err := r.Client.Patch(ctx, patched, client.MergeFromWithOptions(job, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("add owner %s to Job %s/%s: %w", we.Name, job.Namespace, job.Name, err)
	}
	return nil
}

// getOptional gets ns/name into obj, returning nil (not an error) when it does not exist.
func getOptional[T client.Object](ctx context.Context, c client.Reader, ns, name string, obj T) (T, error) {
	var zero T
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return zero, nil
		}
		return zero, fmt.Errorf("get %T %s/%s: %w", obj, ns, name, err)
	}
	return obj, nil
}

func (r *Reconciler) exists(ctx context.Context, ns, name string, obj client.Object) (bool, error) {
	got, err := getOptional(ctx, r.Client, ns, name, obj)
	return got != nil, err
}
