package redact

import (
	"strings"
	"testing"
)

const planted = "PLANTEDsecret0123456789"

func TestURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://bucket.s3.amazonaws.com/m/model.onnx?X-Amz-Credential=AKIA&X-Amz-Signature=" + planted,
			"https://bucket.s3.amazonaws.com/m/model.onnx?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED"},
		{"https://user:" + planted + "@host/m.onnx", "https://REDACTED@host/m.onnx"},
		{"https://host/m.onnx#" + planted, "https://host/m.onnx#REDACTED"},
		{"https://host/m.onnx?" + planted, "https://host/m.onnx?REDACTED"},
		{"https://host/m.onnx?a%00b=" + planted, "https://host/m.onnx?REDACTED"},
		{"https://host/m.onnx", "https://host/m.onnx"},
		{"hf://openai/whisper-base/onnx/encoder_model.onnx@main", "hf://openai/whisper-base/onnx/encoder_model.onnx@main"},
		{"/models/encoder.onnx", "/models/encoder.onnx"},
		{"pvc://models/encoder.onnx", "pvc://models/encoder.onnx"},
		{"https://host/%zz?sig=" + planted, "https://host/%zz?REDACTED"},
	} {
		if got := URL(tc.in); got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestURLNeverKeepsSecret(t *testing.T) {
	for _, in := range []string{
		"https://h/p?X-Amz-Signature=" + planted,
		"https://h/p?sig=" + planted + "&se=2026",
		"https://h/p?sv=1;sig=" + planted,
		"https://" + planted + "@h/p",
		"https://u:" + planted + "@h/p",
		"http://h/p#" + planted,
		"not a url ?" + planted,
		"https://h/p?" + strings.Repeat("x", 70) + planted,
	} {
		if got := URL(in); strings.Contains(got, planted) {
			t.Errorf("URL(%q) = %q: the secret is still there", in, got)
		}
	}
}

func TestText(t *testing.T) {
	msg := `stage https://h/m.onnx?X-Amz-Signature=` + planted + `: Get "https://h/m.onnx?X-Amz-Signature=` + planted + `": dial tcp: refused`
	got := Text(msg)
	if strings.Contains(got, planted) {
		t.Fatalf("Text kept the secret: %q", got)
	}
	want := `stage https://h/m.onnx?X-Amz-Signature=REDACTED: Get "https://h/m.onnx?X-Amz-Signature=REDACTED": dial tcp: refused`
	if got != want {
		t.Fatalf("Text = %q, want %q", got, want)
	}
	if plain := "no url here: a/b?c"; Text(plain) != plain {
		t.Fatalf("Text changed %q", plain)
	}
}
