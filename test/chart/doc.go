// Package chart holds the tests of the Helm chart charts/xdna-whisper: helm lint, helm
// template with the default and the charts/xdna-whisper/ci values files, a server-side
// dry-run of every rendered object with strict field validation against a real
// kube-apiserver (envtest), the security properties of the rendered workloads, the exact
// RBAC rules, and the operator's own code running with only the chart's RBAC.
//
// `make test-chart` provides the helm binary (hack/helm.sh), the kube-apiserver and etcd
// (hack/k8s-bins.sh) and third-party CRDs (hack/chart-test-crds.sh) through HELM,
// KUBEBUILDER_ASSETS and CHART_TEST_CRDS. Without them the tests skip, unless
// XDNA_CHART_TEST=required (as make test-chart sets), where they fail.
package chart
