package operator

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	whisperv1 "github.com/xdna-whisper/xdna-whisper/api/v1alpha1"
)

// Mount points of the serving Secrets in encoder pods.
const (
	tlsMount    = "/etc/whisper/tls"
	tokensMount = "/etc/whisper/auth"
	// AuthTokensKey is the key of the auth token Secret holding the tokens, one per line.
	AuthTokensKey = "tokens"
)

// imageAllowed checks spec.image against the allow list. The image decides what runs with the
// shared cache mounted (read-write in staging pods) and, for NPU pods, as root with IPC_LOCK, so
// by default only the operator's own image is allowed (spec.image empty or equal to it). An entry
// ending in '*' allows every image starting with what precedes it; "*" alone allows any image.
func (c Config) imageAllowed(img string) error {
	if img == "" || img == c.EncoderImage {
		return nil
	}
	for _, a := range c.ImageAllowList {
		if prefix, wild := strings.CutSuffix(a, "*"); (wild && strings.HasPrefix(img, prefix)) || a == img {
			return nil
		}
	}
	allowed := append([]string{c.EncoderImage}, c.ImageAllowList...)
	return fmt.Errorf("spec.image %q is not allowed: this operator runs only %s (an admin extends the list with --image-allow-list, Helm value operator.imageAllowList)",
		img, strings.Join(allowed, ", "))
}

// refusedImage is the staging verdict for a WhisperEncoder whose image is refused: nothing is
// created for it, and its status says why.
func refusedImage(err error) stagingView {
	return stagingView{State: stagingRefused, Message: err.Error()}
}

// stagerPolicyArgs are the stager's download limits from the operator's settings.
func stagerPolicyArgs(cfg Config) []string {
	var args []string
	if cfg.MaxDownloadBytes > 0 {
		args = append(args, "--max-download-bytes", strconv.FormatInt(cfg.MaxDownloadBytes, 10))
	}
	if len(cfg.StagingAllowHosts) > 0 {
		args = append(args, "--allow-hosts", strings.Join(cfg.StagingAllowHosts, ","))
	}
	if len(cfg.StagingDenyHosts) > 0 {
		args = append(args, "--deny-hosts", strings.Join(cfg.StagingDenyHosts, ","))
	}
	return args
}

// secureServing mounts the TLS and token Secrets (in the WhisperEncoder's namespace) into the
// encoder container and passes them to `whisper-encoder serve`; with TLS the probes and the
// scrape annotation switch to HTTPS.
func secureServing(ps *corev1.PodTemplateSpec, cfg Config) {
	c := &ps.Spec.Containers[0]
	if cfg.TLSSecretName != "" {
		ps.Spec.Volumes = append(ps.Spec.Volumes, secretVolume("tls", cfg.TLSSecretName))
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "tls", MountPath: tlsMount, ReadOnly: true})
		c.Args = append(c.Args, "--tls-cert", tlsMount+"/"+corev1.TLSCertKey, "--tls-key", tlsMount+"/"+corev1.TLSPrivateKeyKey)
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
			p.HTTPGet.Scheme = corev1.URISchemeHTTPS
		}
		ps.Annotations["prometheus.io/scheme"] = "https"
	}
	if cfg.AuthTokenSecret != "" {
		ps.Spec.Volumes = append(ps.Spec.Volumes, secretVolume("auth", cfg.AuthTokenSecret))
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "auth", MountPath: tokensMount, ReadOnly: true})
		c.Args = append(c.Args, "--auth-token-file", tokensMount+"/"+AuthTokensKey)
		if cfg.AuthMetrics {
			c.Args = append(c.Args, "--auth-metrics")
		}
	}
}

// secretVolume mounts a Secret readable by the pod's user only (0440 with its fsGroup).
func secretVolume(name, secret string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName: secret, DefaultMode: ptr.To(int32(0o440)),
	}}}
}

// validateSecurity checks the security settings of a Config.
func (c Config) validateSecurity() error {
	for _, a := range c.ImageAllowList {
		if a == "" || strings.Contains(strings.TrimSuffix(a, "*"), "*") {
			return fmt.Errorf("image allow list entry %q: want an image reference, or a prefix ending in '*'", a)
		}
	}
	if c.MaxDownloadBytes < 0 {
		return fmt.Errorf("max download bytes %d: want > 0 (0: the stager's default)", c.MaxDownloadBytes)
	}
	if c.AuthMetrics && c.AuthTokenSecret == "" {
		return fmt.Errorf("auth metrics: needs an auth token Secret (--auth-token-secret)")
	}
	return nil
}

// refusedReason reports whether a WeightsStaged reason is the image refusal, which Ready repeats.
func refusedReason(staged string) bool { return staged == whisperv1.ReasonImageNotAllowed }

// missingServingSecrets names the serving Secrets of the operator's configuration (TLS
// certificate, bearer tokens) that do not exist in namespace ns. It reads metadata only, by
// name: the chart grants get on exactly those names and nothing else of Secrets. A lookup
// that fails for another reason (RBAC from an older chart, API trouble) is logged and not
// reported, since the pods may well start.
func (r *Reconciler) missingServingSecrets(ctx context.Context, ns string) []string {
	if r.APIReader == nil {
		return nil
	}
	var missing []string
	for _, s := range []struct{ name, what string }{
		{r.Config.TLSSecretName, "TLS certificate (kubernetes.io/tls: tls.crt, tls.key)"},
		{r.Config.AuthTokenSecret, "bearer tokens (key " + AuthTokensKey + ")"},
	} {
		if s.name == "" {
			continue
		}
		m := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}}
		err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ns, Name: s.name}, m)
		switch {
		case apierrors.IsNotFound(err):
			missing = append(missing, fmt.Sprintf("Secret %s with the encoders' %s", s.name, s.what))
		case err != nil:
			ctrl.LoggerFrom(ctx).V(1).Info("cannot check a serving Secret", "namespace", ns, "secret", s.name, "error", err.Error())
		}
	}
	return missing
}
