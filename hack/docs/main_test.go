package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDocComment(t *testing.T) {
	tests := []struct{ in, want string }{
		{"# -- Deploy it.", "Deploy it."},
		{"# -- Namespaces where\n# users work.", "Namespaces where users work."},
		{"# a section note\n\n# -- The value.", "The value."},
		{"# plain comment", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := docComment(tt.in); got != tt.want {
			t.Errorf("docComment(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestReplaceSections(t *testing.T) {
	doc := "a\n<!-- BEGIN GENERATED: x -->\nold\n<!-- END GENERATED: x -->\nb\n"
	got, err := replaceSections(doc, map[string]string{"x": "new\n"})
	if err != nil || got != "a\n<!-- BEGIN GENERATED: x -->\nnew\n<!-- END GENERATED: x -->\nb\n" {
		t.Fatalf("got %q, %v", got, err)
	}
	for _, bad := range []string{"no markers\n", "<!-- END GENERATED: x -->\n<!-- BEGIN GENERATED: x -->\n",
		"<!-- BEGIN GENERATED: x -->\n<!-- BEGIN GENERATED: x -->\n<!-- END GENERATED: x -->"} {
		if _, err := replaceSections(bad, map[string]string{"x": ""}); err == nil || !strings.Contains(err.Error(), "GENERATED: x") {
			t.Errorf("replaceSections(%q): %v, want an error naming the section", bad, err)
		}
	}
}

// TestRepositoryREADMEIsCurrent runs the generator on the real chart and CRD in check mode,
// and shows that check mode notices a stale README and that write mode repairs it.
func TestRepositoryREADMEIsCurrent(t *testing.T) {
	root := filepath.Join("..", "..")
	args := []string{"-chart", filepath.Join(root, "charts", "xdna-whisper"),
		"-crd", filepath.Join(root, "config", "crd", "bases", "whisper.xdna.io_whisperencoders.yaml")}
	var stdout, stderr bytes.Buffer
	if err := run(append(args, "-readme", filepath.Join(root, "README.md"), "-check"), &stdout, &stderr); err != nil {
		t.Fatalf("%v (run make docs)", err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(t.TempDir(), "README.md")
	broken := strings.Replace(string(readme), "| `crds.install` |", "| `crds.installed` |", 1)
	if broken == string(readme) {
		t.Fatal("README has no crds.install row")
	}
	os.WriteFile(stale, []byte(broken), 0o644)
	if err := run(append(args, "-readme", stale, "-check"), &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("check of a stale README: %v, want an error saying it is stale", err)
	}
	if err := run(append(args, "-readme", stale), &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if fixed, _ := os.ReadFile(stale); string(fixed) != string(readme) {
		t.Error("write mode did not restore the README")
	}
}
