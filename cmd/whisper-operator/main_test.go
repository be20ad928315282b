package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/xdna-whisper/xdna-whisper/operator"
)

func TestParse(t *testing.T) {
	base := operator.DefaultConfig()
	base.EncoderImage = "img:1"
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(*operator.Options)
		wantErr string
	}{
		{"flags", []string{"--encoder-image", "img:1", "--cache-claim", "models", "--watch-namespaces", "a, b,,c",
			"--stage-deadline", "30m", "--stage-backoff-limit", "4", "--image-pull-policy", "Never", "--leader-elect"}, nil,
			func(o *operator.Options) {
				o.Config.CacheClaimName, o.Config.StageActiveDeadline, o.Config.StageBackoffLimit = "models", 30*time.Minute, 4
				o.Config.ImagePullPolicy = "Never"
				o.WatchNamespaces, o.LeaderElection = []string{"a", "b", "c"}, true
			}, ""},
		{"environment", nil, map[string]string{"WHISPER_ENCODER_IMAGE": "img:1", "WATCH_NAMESPACES": "ml", "WHISPER_STAGE_TTL": "2h",
			"LEADER_ELECT": "true", "POD_NAMESPACE": "whisper-system", "WHISPER_QUEUE_DEPTH_METRIC": "q",
			"WHISPER_DECODE_QUEUE_DEPTH_METRIC": "dq"},
			func(o *operator.Options) {
				o.WatchNamespaces, o.Config.StageTTLAfterFinished, o.Config.QueueDepthMetric = []string{"ml"}, 2*time.Hour, "q"
				o.Config.DecodeQueueDepthMetric = "dq"
				o.LeaderElection, o.LeaderElectionNamespace = true, "whisper-system"
			}, ""},
		{"keda", []string{"--encoder-image", "img:1", "--autoscaler", "keda", "--prometheus-address", "http://prom:9090"}, nil,
			func(o *operator.Options) {
				o.Config.Autoscaler, o.Config.PrometheusAddress = "keda", "http://prom:9090"
			}, ""},
		{"keda from the environment", nil, map[string]string{"WHISPER_ENCODER_IMAGE": "img:1", "WHISPER_AUTOSCALER": "keda",
			"WHISPER_PROMETHEUS_ADDRESS": "https://prom.monitoring:9091"},
			func(o *operator.Options) {
				o.Config.Autoscaler, o.Config.PrometheusAddress = "keda", "https://prom.monitoring:9091"
			}, ""},
		{"keda without prometheus", []string{"--encoder-image", "i", "--autoscaler", "keda"}, nil, nil, `prometheus address: "", want an http(s) URL`},
		{"image pull secrets", []string{"--encoder-image", "img:1", "--image-pull-secrets", "regcred, mirror-creds,"}, nil,
			func(o *operator.Options) { o.Config.ImagePullSecrets = []string{"regcred", "mirror-creds"} }, ""},
		{"image pull secrets from the environment", nil, map[string]string{"WHISPER_ENCODER_IMAGE": "img:1", "WHISPER_IMAGE_PULL_SECRETS": "regcred"},
			func(o *operator.Options) { o.Config.ImagePullSecrets = []string{"regcred"} }, ""},
		{"bad image pull secret", []string{"--encoder-image", "i", "--image-pull-secrets", "RegCred"}, nil, nil,
			`image pull secret 1 "RegCred": a lowercase RFC 1123 subdomain`},
		{"image pull secret twice", []string{"--encoder-image", "i", "--image-pull-secrets", "a,b,a"}, nil, nil,
			`image pull secret 3 "a": named twice`},
		{"flag beats environment", []string{"--cache-claim", "flag"}, map[string]string{"WHISPER_ENCODER_IMAGE": "img:1", "WHISPER_CACHE_CLAIM": "env"},
			func(o *operator.Options) { o.Config.CacheClaimName = "flag" }, ""},
		{"no image", nil, nil, nil, "encoder image: empty"},
		{"bad pull policy", []string{"--encoder-image", "i", "--image-pull-policy", "Sometimes"}, nil, nil, `image pull policy: "Sometimes", want Always, IfNotPresent or Never`},
		{"bad duration in env", nil, map[string]string{"WHISPER_ENCODER_IMAGE": "i", "WHISPER_STAGE_DEADLINE": "soon"}, nil, `WHISPER_STAGE_DEADLINE="soon": want a duration`},
		{"negative backoff", []string{"--encoder-image", "i", "--stage-backoff-limit", "-1"}, nil, nil, "--stage-backoff-limit -1"},
		{"stray argument", []string{"--encoder-image", "i", "extra"}, nil, nil, `unexpected arguments ["extra"]`},
		{"unknown flag", []string{"--frobnicate"}, nil, nil, "flag provided but not defined: -frobnicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			s, err := parse(tt.args, func(k string) string { return tt.env[k] }, &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parse error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			want := operator.Options{Config: base, MetricsAddr: ":8080", ProbeAddr: ":8081"}
			tt.want(&want)
			if diff := cmp.Diff(want, s.opts, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunExitCodes(t *testing.T) {
	env := func(string) string { return "" }
	var out, errb bytes.Buffer
	if code := run([]string{"--version"}, env, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "whisper-operator ") {
		t.Errorf("--version: exit %d, output %q", code, out.String())
	}
	if code := run([]string{"--bogus"}, env, &out, &errb); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
	errb.Reset()
	if code := run(nil, env, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--encoder-image") {
		t.Errorf("missing image: exit %d, stderr %q; want 2 naming the flag", code, errb.String())
	}
	if code := run([]string{"-h"}, env, &out, &errb); code != 0 {
		t.Errorf("-h: exit %d, want 0", code)
	}
}
