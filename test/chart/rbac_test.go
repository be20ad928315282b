package chart

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// The operator's permissions, listed here by hand so that a change to the generated
// ClusterRole (config/rbac/role.yaml, from the reconciler's kubebuilder markers) is a
// reviewed change to this list too. One "group resource verb" per line; "" is the core group.
var operatorRules = permissions(`
 configmaps create
 configmaps get
 configmaps list
 configmaps patch
 configmaps watch
 persistentvolumeclaims get
 persistentvolumeclaims list
 persistentvolumeclaims watch
 pods get
 pods list
 pods watch
 services create
 services get
 services list
 services patch
 services watch
apps deployments create
apps deployments get
apps deployments list
apps deployments patch
apps deployments watch
autoscaling horizontalpodautoscalers create
autoscaling horizontalpodautoscalers delete
autoscaling horizontalpodautoscalers get
autoscaling horizontalpodautoscalers list
autoscaling horizontalpodautoscalers patch
autoscaling horizontalpodautoscalers watch
batch jobs create
batch jobs delete
batch jobs get
batch jobs list
batch jobs patch
batch jobs watch
policy poddisruptionbudgets create
policy poddisruptionbudgets get
policy poddisruptionbudgets list
policy poddisruptionbudgets patch
policy poddisruptionbudgets watch
resource.k8s.io resourceclaimtemplates create
resource.k8s.io resourceclaimtemplates delete
resource.k8s.io resourceclaimtemplates get
resource.k8s.io resourceclaimtemplates list
resource.k8s.io resourceclaimtemplates patch
resource.k8s.io resourceclaimtemplates watch
events.k8s.io events create
events.k8s.io events patch
whisper.xdna.io whisperencoders get
whisper.xdna.io whisperencoders list
whisper.xdna.io whisperencoders watch
whisper.xdna.io whisperencoders/finalizers update
whisper.xdna.io whisperencoders/status get
whisper.xdna.io whisperencoders/status update
`)

// leaderElectionRules: the Lease, and events about it, in the operator's own namespace.
var leaderElectionRules = permissions(`
coordination.k8s.io leases create
coordination.k8s.io leases delete
coordination.k8s.io leases get
coordination.k8s.io leases list
coordination.k8s.io leases patch
coordination.k8s.io leases update
coordination.k8s.io leases watch
 events create
 events patch
events.k8s.io events create
events.k8s.io events patch
`)

// stagerRules: the stager patches one annotation on its own pod.
var stagerRules = permissions(`
 pods patch
`)

// withServingSecrets adds the operator's get of the serving Secrets the values name
// (encoder.tls.secretName, encoder.auth.tokenSecret), in that order, and its rules for KEDA's
// ScaledObjects with encoder.autoscaler.kind keda.
func withServingSecrets(rules []string, r *rendering) []string {
	var names []string
	for _, k := range []string{"encoder.tls.secretName", "encoder.auth.tokenSecret"} {
		if n, _ := r.value(k, "").(string); n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	out := slices.Clone(rules)
	if len(names) > 0 {
		out = append(out, `"" secrets get `+strings.Join(names, ","))
	}
	// With KEDA the operator makes, reads and removes ScaledObjects.
	if r.value("encoder.autoscaler.kind", "hpa") == "keda" {
		out = append(out, permissions("keda.sh scaledobjects get\nkeda.sh scaledobjects list\nkeda.sh scaledobjects watch\n"+
			"keda.sh scaledobjects create\nkeda.sh scaledobjects patch\nkeda.sh scaledobjects delete")...)
	}
	slices.Sort(out)
	return out
}

// permissions parses "group resource verb" lines into a sorted list.
func permissions(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		f := strings.Fields(l)
		if len(f) == 2 { // core group
			f = append([]string{`""`}, f...)
		}
		out = append(out, strings.Join(f, " "))
	}
	slices.Sort(out)
	return out
}

// expand turns rules into sorted "group resource verb" triples, and reports any wildcard or
// nonResourceURLs (the chart grants none). A rule limited to resourceNames expands to
// "group resource verb name,name…": only the operator's get of the serving Secrets has one.
func expand(rules []rbacv1.PolicyRule) ([]string, error) {
	var out []string
	for _, r := range rules {
		if len(r.NonResourceURLs) > 0 {
			return nil, fmt.Errorf("rule %+v: nonResourceURLs are not expected", r)
		}
		if len(r.ResourceNames) > 0 {
			if !slices.Equal(r.APIGroups, []string{""}) || !slices.Equal(r.Resources, []string{"secrets"}) || !slices.Equal(r.Verbs, []string{"get"}) {
				return nil, fmt.Errorf("rule %+v: resourceNames only on the get of core secrets", r)
			}
			out = append(out, `"" secrets get `+strings.Join(r.ResourceNames, ","))
			continue
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					if g == "*" || res == "*" || v == "*" {
						return nil, fmt.Errorf("rule %+v has a wildcard", r)
					}
					if g == "" {
						g = `""`
					}
					out = append(out, g+" "+res+" "+v)
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// diffLists says what a has that b lacks and the reverse.
func diffLists(got, want []string) string {
	var extra, missing []string
	for _, g := range got {
		if !slices.Contains(want, g) {
			extra = append(extra, g)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			missing = append(missing, w)
		}
	}
	return fmt.Sprintf("granted but not expected: %q; expected but not granted: %q", extra, missing)
}

// TestRBACIsExactlyTheListedRules checks every Role and ClusterRole of every rendering
// against the lists above, and the bindings' subjects.
func TestRBACIsExactlyTheListedRules(t *testing.T) {
	needEnv(t)
	for _, vc := range valuesCases(t) {
		t.Run(vc.name, func(t *testing.T) {
			r := render(t, vc)
			roles := append(r.ofKind("ClusterRole"), r.ofKind("Role")...)
			stager, _ := r.value("stager.liveProgress", false).(bool)
			operatorOn := r.value("operator.enabled", true) != false
			allNS, _ := r.value("operator.watchAllNamespaces", false).(bool)
			counts := map[string]int{}
			for _, o := range roles {
				var role rbacv1.ClusterRole // same rules field for Role
				fromUnstructured(t, o, &role)
				got, err := expand(role.Rules)
				if err != nil {
					t.Errorf("%s: %v", objectID(o), err)
					continue
				}
				var want []string
				switch name := o.GetName(); {
				case strings.HasSuffix(name, "-operator-leader-election"):
					want = leaderElectionRules
					if o.GetNamespace() != r.namespace {
						t.Errorf("%s: leader election Role outside the release namespace %s", objectID(o), r.namespace)
					}
				case strings.HasSuffix(name, "-operator"):
					want = withServingSecrets(operatorRules, r)
				case name == r.value("stager.serviceAccountName", "whisper-stager"):
					want = stagerRules
				case strings.HasSuffix(name, "-dra-driver") && o.GetKind() == "ClusterRole":
					want = draDriverRules
				default:
					t.Errorf("%s: unexpected role", objectID(o))
					continue
				}
				counts[o.GetKind()+" "+strings.TrimPrefix(o.GetName(), r.release+"-")]++
				if !slices.Equal(got, want) {
					t.Errorf("%s: %s", objectID(o), diffLists(got, want))
				}
			}
			wantCounts := map[string]int{}
			if operatorOn {
				if allNS {
					wantCounts["ClusterRole operator"] = 1
				} else {
					wantCounts["Role operator"] = len(r.workloadNamespaces())
				}
				if r.value("operator.leaderElection.enabled", true) != false {
					wantCounts["Role operator-leader-election"] = 1
				}
				if stager {
					wantCounts["Role "+r.value("stager.serviceAccountName", "whisper-stager").(string)] = len(r.workloadNamespaces())
				}
			}
			if r.value("draDriver.enabled", false) == true {
				wantCounts["ClusterRole dra-driver"] = 1
			}
			if fmt.Sprint(counts) != fmt.Sprint(wantCounts) {
				t.Errorf("roles rendered %v, want %v", counts, wantCounts)
			}
			checkBindings(t, r)
		})
	}
}

// checkBindings: every binding names a role the chart renders, for ServiceAccounts only.
func checkBindings(t *testing.T, r *rendering) {
	t.Helper()
	roles := map[string]bool{}
	for _, o := range append(r.ofKind("ClusterRole"), r.ofKind("Role")...) {
		roles[o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()] = true
	}
	sas := map[string]bool{}
	for _, o := range r.ofKind("ServiceAccount") {
		sas[o.GetNamespace()+"/"+o.GetName()] = true
	}
	for _, o := range append(r.ofKind("ClusterRoleBinding"), r.ofKind("RoleBinding")...) {
		var b rbacv1.RoleBinding
		fromUnstructured(t, o, &b)
		ns := o.GetNamespace()
		if b.RoleRef.Kind == "ClusterRole" {
			ns = ""
		}
		if !roles[b.RoleRef.Kind+"/"+ns+"/"+b.RoleRef.Name] {
			t.Errorf("%s: binds %s %s, which the chart does not render", objectID(o), b.RoleRef.Kind, b.RoleRef.Name)
		}
		for _, s := range b.Subjects {
			if s.Kind != "ServiceAccount" || !sas[s.Namespace+"/"+s.Name] {
				t.Errorf("%s: subject %+v is not a ServiceAccount the chart renders", objectID(o), s)
			}
		}
	}
}

// TestChartRulesComeFromConfig: the chart's copies of config/rbac are current, and the
// generated ClusterRole grants exactly the listed operator rules.
func TestChartRulesComeFromConfig(t *testing.T) {
	for _, tt := range []struct {
		file, kind string
		want       []string
	}{
		{"role.yaml", "ClusterRole", operatorRules},
		{"leader_election_role.yaml", "Role", leaderElectionRules},
		{"stager.yaml", "Role", stagerRules},
	} {
		src, err := os.ReadFile(filepath.Join(configDir, "rbac", tt.file))
		if err != nil {
			t.Fatal(err)
		}
		cp, err := os.ReadFile(filepath.Join(chartDir, "files", "rbac", tt.file))
		if err != nil {
			t.Fatal(err)
		}
		if string(src) != string(cp) {
			t.Errorf("charts/xdna-whisper/files/rbac/%s differs from config/rbac/%s: run make chart-sync", tt.file, tt.file)
		}
		found := false
		for _, doc := range strings.Split(string(src), "\n---") {
			var role rbacv1.ClusterRole
			if err := yaml.Unmarshal([]byte(doc), &role); err != nil || role.Kind != tt.kind {
				continue
			}
			found = true
			got, err := expand(role.Rules)
			if err != nil {
				t.Errorf("config/rbac/%s: %v", tt.file, err)
			} else if !slices.Equal(got, tt.want) {
				t.Errorf("config/rbac/%s: %s", tt.file, diffLists(got, tt.want))
			}
		}
		if !found {
			t.Errorf("config/rbac/%s has no %s", tt.file, tt.kind)
		}
	}
}
