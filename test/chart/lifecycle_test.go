package chart

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xdna-whisper/xdna-whisper/operator"
)

const crdName = "whisperencoders.whisper.xdna.io"

// adminKubeconfig writes a kubeconfig for the envtest API server's admin.
func adminKubeconfig(t *testing.T) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: restConfig.Host, CertificateAuthorityData: restConfig.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: restConfig.CertData, ClientKeyData: restConfig.KeyData, Token: restConfig.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestHelmInstallUpgradeUninstall runs the real helm against the API server: install
// prints the NOTES, upgrade updates the CRD (it is a template, not crds/), uninstall
// removes the release but keeps the CRD (helm.sh/resource-policy: keep), a new install
// under the same release name adopts the kept CRD, and one under another name is refused
// (the README says so).
func TestHelmInstallUpgradeUninstall(t *testing.T) {
	needEnv(t)
	scheme := clientScheme(t)
	k8s, err := client.New(restConfig, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	// Other tests created the CRD without helm: start from a cluster without it.
	deleteCRD(t, k8s)
	kubeconfig := adminKubeconfig(t)
	ns := "helm-life"
	h := func(args ...string) (string, error) {
		return helm(append(args, "--kubeconfig", kubeconfig)...)
	}

	out, err := h("install", "xw", chartDir, "-n", ns, "--create-namespace", "--set", "nodeFeatureRule.create=false")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"kubectl label node <node> feature.node.kubernetes.io/pci-1180_1022_1502.present=true",
		"kubectl -n " + ns + " get we -w",
		"kubectl label namespace " + ns + " pod-security.kubernetes.io/enforce=privileged",
		"weights-cache claim \"whisper-cache\"",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("install NOTES lack %q:\n%s", want, out)
		}
	}
	crd := getCRD(t, k8s)
	if crd.Annotations["helm.sh/resource-policy"] != "keep" || crd.Annotations["meta.helm.sh/release-name"] != "xw" {
		t.Errorf("installed CRD annotations %v", crd.Annotations)
	}

	// An upgrade with a changed CRD changes the CRD in the cluster.
	changed := copyChart(t)
	crdFile := filepath.Join(changed, "files", "crds", "whisper.xdna.io_whisperencoders.yaml")
	raw, err := os.ReadFile(crdFile)
	if err != nil {
		t.Fatal(err)
	}
	const marker = "WhisperEncoder stages a Whisper encoder's weights once"
	if !strings.Contains(string(raw), marker) {
		t.Fatalf("CRD description changed; update this test's marker %q", marker)
	}
	must(t, os.WriteFile(crdFile, []byte(strings.Replace(string(raw), marker, "UPGRADED "+marker, 1)), 0o644))
	if _, err := h("upgrade", "xw", changed, "-n", ns, "--set", "nodeFeatureRule.create=false"); err != nil {
		t.Fatal(err)
	}
	if d := getCRD(t, k8s).Spec.Versions[0].Schema.OpenAPIV3Schema.Description; !strings.HasPrefix(d, "UPGRADED ") {
		t.Errorf("helm upgrade did not update the CRD: description %q", d)
	}

	// Uninstall keeps the CRD and removes the rest.
	if _, err := h("uninstall", "xw", "-n", ns); err != nil {
		t.Fatal(err)
	}
	getCRD(t, k8s)
	var pvc corev1.PersistentVolumeClaim
	err = k8s.Get(bg(), types.NamespacedName{Namespace: ns, Name: "whisper-cache"}, &pvc)
	if err == nil && pvc.DeletionTimestamp == nil {
		t.Error("the cache claim survived helm uninstall (cache.keepOnUninstall is false)")
	}
	releaseClaims(t, k8s, ns)

	// Installing again under the same release name adopts the kept CRD; another name cannot.
	if _, err := h("install", "xw", chartDir, "-n", ns, "--set", "nodeFeatureRule.create=false"); err != nil {
		t.Errorf("re-install under the same release name: %v", err)
	}
	if _, err := h("uninstall", "xw", "-n", ns); err != nil {
		t.Fatal(err)
	}
	releaseClaims(t, k8s, ns)
	_, err = h("install", "other", chartDir, "-n", ns, "--set", "nodeFeatureRule.create=false")
	if err == nil || !strings.Contains(err.Error(), "CustomResourceDefinition") || !strings.Contains(err.Error(), "invalid ownership metadata") {
		t.Errorf("install under another release name with the kept CRD: %v, want helm's ownership refusal", err)
	}
	if _, err := h("install", "other", chartDir, "-n", ns, "--set", "nodeFeatureRule.create=false", "--set", "crds.install=false"); err != nil {
		t.Errorf("install under another release name with crds.install=false: %v", err)
	}
	if _, err := h("uninstall", "other", "-n", ns); err != nil {
		t.Fatal(err)
	}
}

// clientScheme knows the built-in kinds, WhisperEncoder and CRDs.
func clientScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := operator.Scheme()
	must(t, apiextensionsv1.AddToScheme(s))
	return s
}

// getCRD fetches the WhisperEncoder CRD, failing when it is missing.
func getCRD(t *testing.T, k8s client.Client) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	var crd apiextensionsv1.CustomResourceDefinition
	if err := k8s.Get(bg(), types.NamespacedName{Name: crdName}, &crd); err != nil {
		t.Fatalf("CRD %s: %v", crdName, err)
	}
	return &crd
}

// deleteCRD removes the WhisperEncoder CRD (and so every WhisperEncoder) and waits until it is gone.
func deleteCRD(t *testing.T, k8s client.Client) {
	t.Helper()
	crd := &apiextensionsv1.CustomResourceDefinition{}
	crd.Name = crdName
	if err := k8s.Delete(bg(), crd); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	waitFor(t, "CRD deleted", func() error {
		err := k8s.Get(bg(), types.NamespacedName{Name: crdName}, &apiextensionsv1.CustomResourceDefinition{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %v", err)
	})
}

// releaseClaims does what the PVC protection controller (absent from envtest) does for
// claims no pod uses: it removes their finalizer, so deleted claims go away.
func releaseClaims(t *testing.T, k8s client.Client, ns string) {
	t.Helper()
	var pvcs corev1.PersistentVolumeClaimList
	must(t, k8s.List(bg(), &pvcs, client.InNamespace(ns)))
	for i := range pvcs.Items {
		p := &pvcs.Items[i]
		if p.DeletionTimestamp != nil && len(p.Finalizers) > 0 {
			p.Finalizers = nil
			must(t, k8s.Update(bg(), p))
		}
	}
	waitFor(t, "deleted claims gone", func() error {
		must(t, k8s.List(bg(), &pvcs, client.InNamespace(ns)))
		for _, p := range pvcs.Items {
			if p.DeletionTimestamp != nil {
				return fmt.Errorf("claim %s still terminating", p.Name)
			}
		}
		return nil
	})
}

// copyChart copies the chart into a temporary directory.
func copyChart(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "xdna-whisper")
	if out, err := exec.Command("cp", "-r", chartDir, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	return dst
}
