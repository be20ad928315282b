package chart

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/xdna-whisper/xdna-whisper/deviceplugin/config"
)

// TestLintStrict runs helm lint --strict with the defaults and with every ci values file.
func TestLintStrict(t *testing.T) {
	needEnv(t)
	for _, vc := range valuesCases(t) {
		t.Run(vc.name, func(t *testing.T) {
			args := []string{"lint", "--strict", chartDir, "--namespace", vc.namespace, "--kube-version", "1.37.2"}
			if vc.file != "" {
				args = append(args, "--values", vc.file)
			}
			if out, err := helm(args...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// TestStandardLabels: every object carries the app.kubernetes.io/* and helm.sh/chart labels.
func TestStandardLabels(t *testing.T) {
	needEnv(t)
	for _, vc := range valuesCases(t) {
		t.Run(vc.name, func(t *testing.T) {
			r := render(t, vc)
			for _, o := range r.objects {
				l := o.GetLabels()
				for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
					"app.kubernetes.io/managed-by", "app.kubernetes.io/component", "app.kubernetes.io/part-of", "helm.sh/chart"} {
					if l[k] == "" {
						t.Errorf("%s: no label %s", objectID(o), k)
					}
				}
				if l["app.kubernetes.io/instance"] != r.release || l["app.kubernetes.io/managed-by"] != "Helm" {
					t.Errorf("%s: instance %q managed-by %q", objectID(o), l["app.kubernetes.io/instance"], l["app.kubernetes.io/managed-by"])
				}
			}
		})
	}
}

// TestCRDIsTheGeneratedOne: the chart's copy of the CRD is byte-identical to config/crd/bases,
// and what the template renders has the same spec, the chart's labels, and resource-policy keep
// unless crds.keep is false.
func TestCRDIsTheGeneratedOne(t *testing.T) {
	const name = "whisper.xdna.io_whisperencoders.yaml"
	src, err := os.ReadFile(filepath.Join(configDir, "crd", "bases", name))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := os.ReadFile(filepath.Join(chartDir, "files", "crds", name))
	if err != nil {
		t.Fatal(err)
	}
	if string(src) != string(cp) {
		t.Fatalf("charts/xdna-whisper/files/crds/%s differs from config/crd/bases/%s: run make chart-sync", name, name)
	}
	entries, _ := os.ReadDir(filepath.Join(configDir, "crd", "bases"))
	if len(entries) != 1 {
		t.Errorf("config/crd/bases has %d files; the chart ships exactly one CRD", len(entries))
	}
	needEnv(t)
	var want map[string]any
	if err := yaml.Unmarshal(src, &want); err != nil {
		t.Fatal(err)
	}
	for _, vc := range valuesCases(t) {
		r := render(t, vc)
		crds := r.ofKind("CustomResourceDefinition")
		if r.value("crds.install", true) == false {
			if len(crds) != 0 {
				t.Errorf("%s: crds.install=false renders %d CRDs", vc.name, len(crds))
			}
			continue
		}
		if len(crds) != 1 {
			t.Fatalf("%s: %d CRDs rendered, want 1", vc.name, len(crds))
		}
		crd := crds[0]
		if !reflect.DeepEqual(crd.Object["spec"], want["spec"]) {
			t.Errorf("%s: rendered CRD spec differs from config/crd/bases", vc.name)
		}
		keep := crd.GetAnnotations()["helm.sh/resource-policy"] == "keep"
		if wantKeep := r.value("crds.keep", true) != false; keep != wantKeep {
			t.Errorf("%s: resource-policy keep %v, want %v", vc.name, keep, wantKeep)
		}
		if crd.GetAnnotations()["controller-gen.kubebuilder.io/version"] == "" {
			t.Errorf("%s: the generated annotations were dropped", vc.name)
		}
	}
}

// TestValuesSchemaCoversEveryValue: every key of values.yaml is declared in values.schema.json
// (which rejects undeclared keys) and documented by a "# --" comment (what make docs reads).
func TestValuesSchemaCoversEveryValue(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	rawSchema, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(rawSchema, &schema); err != nil {
		t.Fatal(err)
	}
	docs := documentedKeys(string(raw))
	var walk func(path string, v any, s map[string]any)
	walk = func(path string, v any, s map[string]any) {
		if s == nil {
			t.Errorf("values.yaml %s: not in values.schema.json", path)
			return
		}
		if s["additionalProperties"] != false && s["type"] == "object" && s["properties"] != nil {
			t.Errorf("values.schema.json %s: object without additionalProperties: false", path)
		}
		m, isMap := v.(map[string]any)
		props, hasProps := s["properties"].(map[string]any)
		if !isMap || !hasProps || (path != "" && !hasDocumentedChild(docs, path)) {
			// A leaf (or a map documented as one value, like resources).
			if !docs[path] {
				t.Errorf("values.yaml %s: no \"# --\" comment describing it", path)
			}
			return
		}
		for k, child := range m {
			p := strings.TrimPrefix(path+"."+k, ".")
			cs, _ := props[k].(map[string]any)
			walk(p, child, cs)
		}
	}
	walk("", values, schema)
}

// documentedKeys returns the dotted paths of values.yaml keys directly preceded by a "# --" comment block.
func documentedKeys(src string) map[string]bool {
	docs := map[string]bool{}
	var stack []string // key per indentation level (2 spaces)
	pending := false
	for _, line := range strings.Split(src, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "# --"):
			pending = true
			continue
		case strings.HasPrefix(trimmed, "#"):
			continue // continuation of a comment block
		case trimmed == "" || strings.HasPrefix(trimmed, "- "):
			pending = pending && trimmed != ""
			continue
		}
		key, _, ok := strings.Cut(trimmed, ":")
		if !ok {
			continue
		}
		depth := (len(line) - len(strings.TrimLeft(line, " "))) / 2
		if depth > len(stack) {
			continue // inside a default value (e.g. resources.requests.cpu)
		}
		stack = append(stack[:depth], key)
		if pending {
			docs[strings.Join(stack, ".")] = true
		}
		pending = false
	}
	return docs
}

// hasDocumentedChild says whether some key below path is documented (sections need no comment).
func hasDocumentedChild(docs map[string]bool, path string) bool {
	for k := range docs {
		if strings.HasPrefix(k, path+".") {
			return true
		}
	}
	return false
}

// TestBadValuesAreRefused: the schema and the templates refuse mistakes with a message that
// names the value.
func TestBadValuesAreRefused(t *testing.T) {
	needEnv(t)
	tests := []struct {
		name string
		set  []string
		want string
	}{
		{"misspelt key", []string{"operator.replicas=2"}, "replicas"},
		{"unknown top-level key", []string{"devicePlugins.enabled=false"}, "devicePlugins"},
		{"bad allocation policy", []string{"devicePlugin.allocationPolicy=random"}, "allocationPolicy"},
		{"too many contexts", []string{"devicePlugin.contextsPerNPU=7"}, "contextsPerNPU"},
		{"device ID without 0x", []string{"devicePlugin.deviceIDs={1502}"}, "deviceIDs"},
		{"bad digest", []string{"operator.image.digest=sha256:abc"}, "digest"},
		{"bad pull policy", []string{"encoder.image.pullPolicy=Sometimes"}, "pullPolicy"},
		{"bad encoder pull secret", []string{"encoder.imagePullSecrets={Registry_Creds}"}, "imagePullSecrets"},
		{"encoder pull secret twice", []string{"encoder.imagePullSecrets={regcred,regcred}"}, "imagePullSecrets"},
		{"bad duration", []string{"operator.staging.deadline=an hour"}, "deadline"},
		{"bad namespace", []string{"namespaces.workload={Team_A}"}, "workload"},
		{"nodeFeatureRule yes", []string{"nodeFeatureRule.create=yes"}, "create"},
		{"two operators without a leader", []string{"operator.replicaCount=2", "operator.leaderElection.enabled=false"}, "leaderElection"},
		{"no service account name", []string{"operator.serviceAccount.create=false"}, "operator.serviceAccount.name is required"},
		{"auth metrics without tokens", []string{"encoder.auth.metrics=true"}, "encoder.auth.metrics needs encoder.auth.tokenSecret"},
		{"bad TLS secret name", []string{"encoder.tls.secretName=Encoder_TLS"}, "secretName"},
		{"unknown autoscaler", []string{"encoder.autoscaler.kind=vpa"}, "kind"},
		{"keda without prometheus", []string{"encoder.autoscaler.kind=keda"}, "prometheusAddress"},
		{"prometheus address with credentials", []string{"encoder.autoscaler.kind=keda", "encoder.autoscaler.prometheusAddress=http://u:p@prom:9090"}, "prometheusAddress"},
		{"negative download cap", []string{"operator.staging.maxDownloadBytes=-1"}, "maxDownloadBytes"},
		{"DRA unhealthy policy", []string{"draDriver.enabled=true", "devicePlugin.enabled=false", "draDriver.unhealthy=ignore"}, "unhealthy"},
		{"DRA no contexts", []string{"draDriver.enabled=true", "devicePlugin.enabled=false", "draDriver.fallbackContexts=0"}, "fallbackContexts"},
		{"DRA relative kubelet dir", []string{"draDriver.enabled=true", "devicePlugin.enabled=false", "draDriver.kubeletDir=var/lib/kubelet"}, "kubeletDir"},
		{"DRA and device plugin on the same nodes", []string{"draDriver.enabled=true"}, "hand out the same NPUs twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"template", "x", chartDir, "--namespace", "x"}
			for _, s := range tt.set {
				args = append(args, "--set", s)
			}
			out, err := helm(args...)
			if err == nil {
				t.Fatalf("helm template --set %q succeeded, want an error mentioning %q\n%.400s", tt.set, tt.want, out)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error does not mention %q:\n%v", tt.want, err)
			}
		})
	}
}

// TestDevicePluginPlacement: by default the device plugin goes only to nodes labelled by
// vendor AND device ID (never NFD's class+vendor label, which AMD's Sensor Fusion Hub shares);
// the NodeFeatureRule that makes the labels matches class, vendor and device; affinity in
// values replaces the default.
func TestDevicePluginPlacement(t *testing.T) {
	needEnv(t)
	for _, vc := range valuesCases(t) {
		t.Run(vc.name, func(t *testing.T) {
			r := render(t, vc)
			var ds []*unstructured.Unstructured
			for _, o := range r.ofKind("DaemonSet") {
				if isDevicePlugin(objectID(o)) {
					ds = append(ds, o)
				}
			}
			if r.value("devicePlugin.enabled", true) == false {
				if len(ds) != 0 {
					t.Fatalf("devicePlugin.enabled=false renders %d DaemonSets", len(ds))
				}
				return
			}
			if len(ds) != 1 {
				t.Fatalf("%d DaemonSets rendered, want 1", len(ds))
			}
			var d appsv1.DaemonSet
			fromUnstructured(t, ds[0], &d)
			spec := d.Spec.Template.Spec
			cfg, _, err := config.Parse("xdna-device-plugin", spec.Containers[0].Args)
			if err != nil {
				t.Fatal(err)
			}
			ids := slices.Clone(cfg.DeviceIDs)
			if cfg.XDNA2.Enabled {
				ids = append(ids, cfg.XDNA2.DeviceIDs...)
			}
			var wantLabels []string
			for _, id := range ids {
				wantLabels = append(wantLabels, "feature.node.kubernetes.io/pci-1180_1022_"+strings.ToLower(strings.TrimPrefix(id, "0x"))+".present")
			}
			raw, _ := json.Marshal(spec.Affinity)
			if strings.Contains(string(raw), "pci-1180_1022.present") || strings.Contains(string(raw), "pci-1180_1022\"") {
				t.Errorf("placement relies on NFD's class+vendor label: %s", raw)
			}
			if custom, _ := r.value("devicePlugin.affinity", nil).(map[string]any); len(custom) > 0 {
				var rendered map[string]any
				if err := json.Unmarshal(raw, &rendered); err != nil || !reflect.DeepEqual(rendered, custom) {
					t.Errorf("affinity from values %v rendered as %s", custom, raw)
				}
			} else {
				terms := spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
				var got []string
				for _, term := range terms {
					e := term.MatchExpressions[0]
					if len(term.MatchExpressions) != 1 || string(e.Operator) != "In" || !slices.Equal(e.Values, []string{"true"}) {
						t.Errorf("term %+v, want one In [true] expression", term)
					}
					got = append(got, e.Key)
				}
				if !slices.Equal(got, wantLabels) {
					t.Errorf("default placement on %q, want any of %q", got, wantLabels)
				}
			}
			nfdIDs, nfdLabels := slices.Clone(ids), slices.Clone(wantLabels)
			if r.value("draDriver.enabled", false) == true { // the DRA driver's NPUs are labelled too
				draIDs := []string{"0x1502"}
				if r.value("draDriver.xdna2.enabled", false) == true {
					draIDs = append(draIDs, "0x17f0")
				}
				for _, id := range draIDs {
					l := "feature.node.kubernetes.io/pci-1180_1022_" + strings.TrimPrefix(id, "0x") + ".present"
					if !slices.Contains(nfdLabels, l) {
						nfdIDs, nfdLabels = append(nfdIDs, id), append(nfdLabels, l)
					}
				}
			}
			for _, nfr := range r.ofKind("NodeFeatureRule") {
				checkNodeFeatureRule(t, nfr, nfdIDs, nfdLabels)
			}
			create := r.value("nodeFeatureRule.create", "auto")
			wantRule := create == true || (create == "auto" && slices.Contains(vc.extra, "nfd.k8s-sigs.io/v1alpha1/NodeFeatureRule"))
			if got := len(r.ofKind("NodeFeatureRule")); got != map[bool]int{true: 1, false: 0}[wantRule] {
				t.Errorf("%d NodeFeatureRules rendered with create=%v, want rule: %v", got, create, wantRule)
			}
		})
	}
}

// checkNodeFeatureRule: one rule per device ID matching class 1180, vendor 1022 and that
// device, labelling exactly the label the placement uses.
func checkNodeFeatureRule(t *testing.T, nfr *unstructured.Unstructured, ids, labels []string) {
	t.Helper()
	rules, _, _ := unstructured.NestedSlice(nfr.Object, "spec", "rules")
	if len(rules) != len(ids) {
		t.Fatalf("%s: %d rules for device IDs %q", objectID(nfr), len(rules), ids)
	}
	for i, rule := range rules {
		m := rule.(map[string]any)
		wantLabels := map[string]any{labels[i]: "true"}
		if !reflect.DeepEqual(m["labels"], wantLabels) {
			t.Errorf("%s rule %d labels %v, want %v", objectID(nfr), i, m["labels"], wantLabels)
		}
		want := []any{map[string]any{"feature": "pci.device", "matchExpressions": map[string]any{
			"class":  map[string]any{"op": "In", "value": []any{"1180"}},
			"vendor": map[string]any{"op": "In", "value": []any{"1022"}},
			"device": map[string]any{"op": "In", "value": []any{strings.ToLower(strings.TrimPrefix(ids[i], "0x"))}},
		}}}
		if !reflect.DeepEqual(m["matchFeatures"], want) {
			t.Errorf("%s rule %d matchFeatures %v, want %v", objectID(nfr), i, m["matchFeatures"], want)
		}
	}
}

// TestDevicePluginArgsFollowValues: the values reach the plugin's configuration.
func TestDevicePluginArgsFollowValues(t *testing.T) {
	needEnv(t)
	for _, vc := range valuesCases(t) {
		t.Run(vc.name, func(t *testing.T) {
			r := render(t, vc)
			for _, o := range r.ofKind("DaemonSet") {
				if !isDevicePlugin(objectID(o)) {
					continue
				}
				var d appsv1.DaemonSet
				fromUnstructured(t, o, &d)
				c := d.Spec.Template.Spec.Containers[0]
				cfg, _, err := config.Parse("xdna-device-plugin", c.Args)
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]any{
					"resourceName": cfg.ResourceName, "contextsPerNPU": float64(cfg.ContextsPerNPU),
					"allocationPolicy": cfg.AllocationPolicy, "xdna2.enabled": cfg.XDNA2.Enabled,
					"cdi.enabled": cfg.CDI.Enabled, "nfdFeatureFile.enabled": cfg.NFD.Enabled,
					"pluginDir": cfg.PluginDir, "logFormat": cfg.LogFormat, "logLevel": cfg.LogLevel,
					"healthInterval": cfg.HealthInterval.Duration.String(),
				}
				defaults := map[string]any{"resourceName": "amd.com/npu", "contextsPerNPU": float64(1), "allocationPolicy": "spread",
					"xdna2.enabled": false, "cdi.enabled": false, "nfdFeatureFile.enabled": true,
					"pluginDir": "/var/lib/kubelet/device-plugins", "logFormat": "json", "logLevel": "info", "healthInterval": "5s"}
				for k, def := range defaults {
					want := r.value("devicePlugin."+k, def)
					if !reflect.DeepEqual(got[k], want) {
						t.Errorf("devicePlugin.%s: plugin configured %v, values say %v", k, got[k], want)
					}
				}
				port := r.value("devicePlugin.metrics.port", float64(8080)).(float64)
				if cfg.MetricsAddress != fmt.Sprintf(":%d", int(port)) || c.Ports[0].ContainerPort != int32(port) {
					t.Errorf("metrics address %q, container port %d, want port %v", cfg.MetricsAddress, c.Ports[0].ContainerPort, port)
				}
			}
		})
	}
}
