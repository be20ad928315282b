package operator

import (
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mut     func(*Config)
		wantErr string
	}{
		{"defaults with an image", func(*Config) {}, ""},
		{"no image", func(c *Config) { c.EncoderImage = "" }, "encoder image: empty"},
		{"pull secrets", func(c *Config) { c.ImagePullSecrets = []string{"regcred", "mirror.creds"} }, ""},
		{"pull secret with capitals", func(c *Config) { c.ImagePullSecrets = []string{"regcred", "RegCred"} },
			`image pull secret 2 "RegCred": a lowercase RFC 1123 subdomain`},
		{"empty pull secret", func(c *Config) { c.ImagePullSecrets = []string{""} }, `image pull secret 1 "":`},
		{"keda", func(c *Config) {
			c.Autoscaler, c.PrometheusAddress = AutoscalerKEDA, "http://prometheus.monitoring:9090"
		}, ""},
		{"unknown autoscaler", func(c *Config) { c.Autoscaler = "vpa" }, `autoscaler: "vpa", want "hpa" or "keda"`},
		{"keda without prometheus", func(c *Config) { c.Autoscaler = AutoscalerKEDA }, `prometheus address: "", want an http(s) URL`},
		{"keda with a relative address", func(c *Config) { c.Autoscaler, c.PrometheusAddress = AutoscalerKEDA, "prometheus:9090" },
			`prometheus address: "prometheus:9090"`},
		{"keda with credentials in the address", func(c *Config) {
			c.Autoscaler, c.PrometheusAddress = AutoscalerKEDA, "http://admin:s3cret@prometheus:9090"
		}, `prometheus address: "http://admin:xxxxx@prometheus:9090", want an http(s) URL without credentials`},
		{"pull secret twice", func(c *Config) { c.ImagePullSecrets = []string{"a", "b", "a"} }, `image pull secret 3 "a": named twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig()
			tt.mut(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate: %v, want an error containing %q", err, tt.wantErr)
			case err != nil && strings.Contains(err.Error(), "s3cret"):
				t.Fatalf("Validate: %v: the error shows a password", err)
			}
		})
	}
}
