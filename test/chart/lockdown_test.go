package chart

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// TestLockDownValuesReachTheOperator: the staging policy, image allow list, TLS and token
// Secrets and the autoscaler's Prometheus become the operator's flags exactly when set (no flag
// at all otherwise); the autoscaler kind always does.
func TestLockDownValuesReachTheOperator(t *testing.T) {
	needEnv(t)
	eachOperatorDeployment(t, func(t *testing.T, r *rendering, dep *appsv1.Deployment) {
		args := dep.Spec.Template.Spec.Containers[0].Args
		list := func(path string) string {
			var items []string
			l, _ := r.value(path, nil).([]any)
			for _, v := range l {
				items = append(items, v.(string))
			}
			return strings.Join(items, ",")
		}
		str := func(path string) string { s, _ := r.value(path, "").(string); return s }
		want := map[string]string{
			"--staging-allow-hosts=": list("operator.staging.allowHosts"),
			"--staging-deny-hosts=":  list("operator.staging.denyHosts"),
			"--image-allow-list=":    list("operator.imageAllowList"),
			"--tls-secret=":          str("encoder.tls.secretName"),
			"--auth-token-secret=":   str("encoder.auth.tokenSecret"),
			"--prometheus-address=":  str("encoder.autoscaler.prometheusAddress"),
			"--autoscaler=":          "hpa",
		}
		if k := str("encoder.autoscaler.kind"); k != "" {
			want["--autoscaler="] = k
		}
		if r.value("encoder.auth.metrics", false) == true {
			want["--auth-metrics="] = "true"
		}
		if n, _ := r.value("operator.staging.maxDownloadBytes", 0.0).(float64); n > 0 {
			want["--max-download-bytes="] = strconv.FormatInt(int64(n), 10)
		}
		for flag, v := range want {
			i := slices.IndexFunc(args, func(a string) bool { return strings.HasPrefix(a, flag) })
			switch {
			case v == "" && i >= 0:
				t.Errorf("%s set (%q) without its value", flag, args[i])
			case v != "" && (i < 0 || args[i] != flag+v):
				t.Errorf("args %q: want %s%s", args, flag, v)
			}
		}
	})
}

// TestNetworkPolicies: with encoder.networkPolicy.enabled, every workload namespace gets a policy
// admitting only the configured peers to encoder pods' ports, and one keeping staging pods off
// link-local (cloud metadata) addresses; without it, none.
func TestNetworkPolicies(t *testing.T) {
	needEnv(t)
	for _, vc := range valuesCases(t) {
		t.Run(vc.name, func(t *testing.T) {
			r := render(t, vc)
			nps := r.ofKind("NetworkPolicy")
			if r.value("encoder.networkPolicy.enabled", false) != true {
				if len(nps) != 0 {
					t.Fatalf("%d NetworkPolicies without encoder.networkPolicy.enabled", len(nps))
				}
				return
			}
			byNS := map[string][]networkingv1.NetworkPolicy{}
			for _, o := range nps {
				var np networkingv1.NetworkPolicy
				fromUnstructured(t, o, &np)
				byNS[np.Namespace] = append(byNS[np.Namespace], np)
			}
			workload, _ := r.value("namespaces.workload", nil).([]any)
			if len(workload) == 0 || len(byNS) != len(workload) {
				t.Fatalf("policies in namespaces %v, want one pair in each of %v", keys(byNS), workload)
			}
			for ns, list := range byNS {
				var encoder, staging *networkingv1.NetworkPolicy
				for i := range list {
					switch list[i].Spec.PodSelector.MatchLabels["app.kubernetes.io/component"] {
					case "encoder":
						encoder = &list[i]
					case "staging":
						staging = &list[i]
					}
				}
				if encoder == nil || staging == nil {
					t.Fatalf("%s: want an encoder and a staging policy, have %d", ns, len(list))
				}
				in := encoder.Spec.Ingress
				from, _ := r.value("encoder.networkPolicy.from", nil).([]any)
				if len(in) != 1 || len(in[0].From) != len(from) || len(in[0].From) == 0 || len(in[0].Ports) != 2 {
					t.Errorf("%s: encoder ingress %+v, want the %d configured peers on http and grpc", ns, in, len(from))
				}
				var excepted []string
				for _, e := range staging.Spec.Egress {
					for _, p := range e.To {
						if p.IPBlock != nil {
							excepted = append(excepted, p.IPBlock.Except...)
						}
					}
				}
				if !slices.Contains(excepted, "169.254.0.0/16") || !slices.Contains(excepted, "fe80::/10") {
					t.Errorf("%s: staging egress excepts %v, want link-local v4 and v6", ns, excepted)
				}
			}
		})
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
