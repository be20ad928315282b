package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMakeManifestsRefreshesEverything changes an API doc comment in a copy of the repository
// and runs `make manifests` there: the CRD base, the chart's copy of it and the README's spec
// table must all carry the change, so that verify-chart-sync and verify-docs pass right after.
func TestMakeManifestsRefreshesEverything(t *testing.T) {
	if testing.Short() {
		t.Skip("runs controller-gen over the API and the operator (-short)")
	}
	for _, tool := range []string{"make", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	repo := copyRepository(t, filepath.Join("..", ".."))
	const (
		types  = "api/v1alpha1/whisperencoder_types.go"
		old    = "// Precision of the staged weights."
		marker = "Mk7f3a" // short: the CRD's YAML folds long description lines
		marked = "// Precision of the staged weights " + marker + "."
	)
	src, err := os.ReadFile(filepath.Join(repo, types))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(src, []byte(old)) {
		t.Fatalf("%s: no comment %q to change", types, old)
	}
	if err := os.WriteFile(filepath.Join(repo, types), bytes.Replace(src, []byte(old), []byte(marked), 1), 0o644); err != nil {
		t.Fatal(err)
	}

	runMake(t, repo, "manifests")
	for _, generated := range []string{
		"config/crd/bases/whisper.xdna.io_whisperencoders.yaml",
		"charts/xdna-whisper/files/crds/whisper.xdna.io_whisperencoders.yaml",
		"README.md",
	} {
		b, err := os.ReadFile(filepath.Join(repo, generated))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(marker)) {
			t.Errorf("%s: not refreshed by make manifests", generated)
		}
	}
	runMake(t, repo, "verify-chart-sync", "verify-docs")
}

// runMake runs make with targets in dir and fails t with its output when it fails.
func runMake(t *testing.T, dir string, targets ...string) {
	t.Helper()
	cmd := exec.Command("make", append([]string{"--no-print-directory"}, targets...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(targets, " "), err, out)
	}
}

// copyRepository copies the files under root that git tracks or would track (not ignored), as
// they are in the working tree, into a temporary directory (no .git: the Makefile's version
// stamp falls back to "dev").
func copyRepository(t *testing.T, root string) string {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dst := t.TempDir()
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if err := copyFile(filepath.Join(root, name), filepath.Join(dst, name)); err != nil {
			if os.IsNotExist(err) {
				continue // deleted in the working tree
			}
			t.Fatal(err)
		}
	}
	return dst
}

// copyFile copies src to dst (creating dst's directory) with src's permissions.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, info.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
