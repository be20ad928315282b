package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Identity stamped on the test builds.
const (
	testVersion  = "v9.8.7-test"
	testRevision = "0123456789abcdef0123456789abcdef01234567"
	testCreated  = "2026-01-02T03:04:05Z"
)

// repoRoot is the module root, two levels above this package.
var repoRoot = filepath.Join("..", "..")

// mainPackages maps each image to the main package of its binary.
var mainPackages = map[string]string{
	"whisper-encoder":    "./cmd/whisper-encoder",
	"xdna-device-plugin": "./cmd/xdna-device-plugin",
	"xdna-dra-driver":    "./cmd/xdna-dra-driver",
	"whisper-operator":   "./cmd/whisper-operator",
	"pause":              "./hack/images/pause",
	"e2e-agent":          "./test/e2e/agent",
}

var (
	binDir    string // made and removed by TestMain
	buildOnce sync.Once
	built     map[string]string
	buildErr  error
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	var err error
	if binDir, err = os.MkdirTemp("", "images-test-bin-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(binDir) }()
	return m.Run()
}

// staticBinaries builds, once per test binary, every image's binary that has a
// main package in this tree, statically and version-stamped as the Makefile does.
func staticBinaries(t *testing.T) map[string]string {
	t.Helper()
	buildOnce.Do(func() {
		built = map[string]string{}
		ldflags := fmt.Sprintf("-s -w -X github.com/xdna-whisper/xdna-whisper/internal/version.Version=%s -X github.com/xdna-whisper/xdna-whisper/internal/version.Commit=%s", testVersion, testRevision)
		for name, pkg := range mainPackages {
			out := filepath.Join(binDir, name)
			cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, pkg)
			cmd.Dir = repoRoot
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
			if msg, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
				return
			}
			built[name] = out
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// buildAll runs the builder on every binary into a new directory and returns it.
func buildAll(t *testing.T, bins map[string]string) string {
	t.Helper()
	out := t.TempDir()
	args := []string{"-out", out, "-tag", "e2e", "-version", testVersion, "-revision", testRevision, "-created", testCreated, "-arch", runtime.GOARCH}
	for name, path := range bins {
		args = append(args, name+"="+path)
	}
	var stdout, stderr bytes.Buffer
	if err := run(args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	for name := range bins {
		want := fmt.Sprintf("ghcr.io/xdna-whisper/%s:e2e sha256:", name)
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report %q lacks %q", stdout.String(), want)
		}
	}
	return out
}

func TestImagesRunAsBuilt(t *testing.T) {
	bins := staticBinaries(t)
	for _, must := range []string{"whisper-encoder", "pause", "e2e-agent"} {
		if bins[must] == "" {
			t.Fatalf("no binary built for %s", must)
		}
	}
	out := buildAll(t, bins)
	for name := range bins {
		t.Run(name, func(t *testing.T) {
			c := components[name]
			lay := readLayout(t, filepath.Join(out, name+".tar"))
			ref := "ghcr.io/xdna-whisper/" + name + ":e2e"
			if got := lay.index.Manifests[0].Annotations[annotationContainerdName]; got != ref {
				t.Errorf("index annotation %s = %q, want %q", annotationContainerdName, got, ref)
			}
			checkConfig(t, name, c, lay.config)
			root := t.TempDir()
			files := extract(t, lay, root)
			checkFiles(t, c, files)
			checkVersion(t, name, filepath.Join(root, c.path))
		})
	}
}

// checkConfig verifies the runtime configuration and labels of image name.
func checkConfig(t *testing.T, name string, c component, cf *v1.ConfigFile) {
	t.Helper()
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
	}
	wantUser := fmt.Sprintf("%d:%d", c.uid, c.uid)
	if cf.Config.User != wantUser || c.uid == 0 {
		t.Errorf("user %q, want non-root %q", cf.Config.User, wantUser)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{c.path}) {
		t.Errorf("entrypoint %q, want [%s]", cf.Config.Entrypoint, c.path)
	}
	wantLabels := map[string]string{
		"org.opencontainers.image.title":       name,
		"org.opencontainers.image.description": c.description,
		"org.opencontainers.image.version":     testVersion,
		"org.opencontainers.image.revision":    testRevision,
		"org.opencontainers.image.created":     testCreated,
		"org.opencontainers.image.source":      "https://github.com/xdna-whisper/xdna-whisper",
	}
	for k, v := range wantLabels {
		if got := cf.Config.Labels[k]; got != v {
			t.Errorf("label %s = %q, want %q", k, got, v)
		}
	}
	if got := cf.Created.UTC().Format("2006-01-02T15:04:05Z"); got != testCreated {
		t.Errorf("created %s, want %s", got, testCreated)
	}
}

// checkFiles verifies ownership and modes of what the layers unpack to.
func checkFiles(t *testing.T, c component, files map[string]*tar.Header) {
	t.Helper()
	bin := files[strings.TrimPrefix(c.path, "/")]
	if bin == nil || bin.Mode&0o777 != 0o755 || bin.Uid != 0 {
		t.Errorf("binary %s: header %+v, want mode 0755 owned by root", c.path, bin)
	}
	if !c.base {
		if len(files) != len(parents(c.path, ""))+1 {
			t.Errorf("image without base layer has %d entries, want only %s and its directories", len(files), c.path)
		}
		return
	}
	if h := files["tmp/"]; h == nil || h.Mode&0o7777 != 0o1777 {
		t.Errorf("/tmp: %+v, want mode 1777", h)
	}
	if h := files["home/nonroot/"]; h == nil || h.Uid != nonrootUID || h.Gid != nonrootUID {
		t.Errorf("/home/nonroot: %+v, want owned by %d", h, nonrootUID)
	}
	if files["etc/ssl/certs/ca-certificates.crt"] == nil {
		t.Errorf("no CA bundle at %s", caBundlePath)
	}
}

// checkVersion runs the extracted binary with --version.
func checkVersion(t *testing.T, name, path string) {
	t.Helper()
	out, err := exec.Command(path, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s", path, err, out)
	}
	want := fmt.Sprintf("%s %s (commit %s, %s)", name, testVersion, testRevision, runtime.Version())
	if strings.TrimSpace(string(out)) != want {
		t.Errorf("%s --version = %q, want %q", name, strings.TrimSpace(string(out)), want)
	}
}

func TestImagesAreReproducible(t *testing.T) {
	bins := staticBinaries(t)
	one := map[string]string{"pause": bins["pause"], "whisper-encoder": bins["whisper-encoder"]}
	a, b := buildAll(t, one), buildAll(t, one)
	for name := range one {
		if fa, fb := fileSum(t, filepath.Join(a, name+".tar")), fileSum(t, filepath.Join(b, name+".tar")); fa != fb {
			t.Errorf("%s: two builds differ: %s vs %s", name, fa, fb)
		}
	}
}

func TestBadInput(t *testing.T) {
	bins := staticBinaries(t)
	dir := t.TempDir()
	text := filepath.Join(dir, "script.sh")
	os.WriteFile(text, []byte("#!/bin/sh\necho hi\n"), 0o755)
	dynamic, _ := exec.LookPath("sh")
	otherArch := "arm64"
	if runtime.GOARCH == "arm64" {
		otherArch = "amd64"
	}
	id := []string{"-out", dir, "-tag", "t", "-created", "0"}
	tests := []struct {
		name  string
		args  []string
		usage bool
		want  string
	}{
		{"no images", id, true, "no image requested"},
		{"unknown image", append(id, "server="+bins["pause"]), true, `unknown image "server"`},
		{"no binary", append(id, "pause"), true, "want NAME=BINARY"},
		{"twice", append(id, "pause="+bins["pause"], "pause="+bins["pause"]), true, "requested twice"},
		{"no tag", []string{"-created", "0", "pause=" + bins["pause"]}, true, "-tag is required"},
		{"bad tag", []string{"-tag", "a b", "-created", "0", "pause=" + bins["pause"]}, true, `"a b"`},
		{"no created", []string{"-tag", "t", "-created", "", "pause=" + bins["pause"]}, true, "reproducible"},
		{"bad created", []string{"-tag", "t", "-created", "yesterday", "pause=" + bins["pause"]}, true, "want RFC 3339"},
		{"missing binary", append(id, "pause="+filepath.Join(dir, "nope")), false, "not an ELF executable"},
		{"not ELF", append(id, "pause="+text), false, "not an ELF executable"},
		{"dynamic", append(id, "pause="+dynamic), false, "dynamically linked"},
		{"wrong arch", append(append([]string{}, id...), "-arch", otherArch, "pause="+bins["pause"]), false, "want EM_"},
		{"bad CA bundle", append(append([]string{}, id...), "-ca-bundle", text, "e2e-agent="+bins["e2e-agent"]), false, "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(tt.args, &stdout, &stderr)
			if err == nil {
				t.Fatalf("run(%q) succeeded, want error containing %q", tt.args, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			if _, isUsage := err.(usageError); isUsage != tt.usage {
				t.Errorf("usage error = %v, want %v (%v)", isUsage, tt.usage, err)
			}
		})
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, "*.tar*")); len(entries) != 0 {
		t.Errorf("failed builds left files behind: %v", entries)
	}
}

// layout is an OCI image layout read back from a tar file, with every blob
// checked against its digest and size.
type layout struct {
	index    v1.IndexManifest
	manifest v1.Manifest
	config   *v1.ConfigFile
	layers   [][]byte // compressed, in manifest order
}

// readLayout opens a tar written by the builder and verifies it as an OCI layout
// the way an importer would, without using the builder's own code.
func readLayout(t *testing.T, path string) layout {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if h.Typeflag == tar.TypeReg {
			files[h.Name], _ = io.ReadAll(tr)
		}
	}
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Fatalf("oci-layout = %q", files["oci-layout"])
	}
	var lay layout
	if err := json.Unmarshal(files["index.json"], &lay.index); err != nil || len(lay.index.Manifests) != 1 {
		t.Fatalf("index.json: %v, %d manifests (want 1)", err, len(lay.index.Manifests))
	}
	blob := func(d v1.Descriptor) []byte {
		b, ok := files["blobs/sha256/"+d.Digest.Hex]
		if !ok || d.Digest.Algorithm != "sha256" {
			t.Fatalf("blob %s missing", d.Digest)
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != d.Digest.Hex || int64(len(b)) != d.Size {
			t.Fatalf("blob %s: sha256 %x size %d, want size %d", d.Digest, sum, len(b), d.Size)
		}
		return b
	}
	md := lay.index.Manifests[0]
	if md.MediaType != "application/vnd.oci.image.manifest.v1+json" {
		t.Errorf("manifest media type %s", md.MediaType)
	}
	if err := json.Unmarshal(blob(md), &lay.manifest); err != nil {
		t.Fatal(err)
	}
	if lay.manifest.Config.MediaType != "application/vnd.oci.image.config.v1+json" {
		t.Errorf("config media type %s", lay.manifest.Config.MediaType)
	}
	if lay.config, err = v1.ParseConfigFile(bytes.NewReader(blob(lay.manifest.Config))); err != nil {
		t.Fatal(err)
	}
	if len(lay.config.RootFS.DiffIDs) != len(lay.manifest.Layers) {
		t.Fatalf("%d diff_ids for %d layers", len(lay.config.RootFS.DiffIDs), len(lay.manifest.Layers))
	}
	for i, l := range lay.manifest.Layers {
		if l.MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
			t.Errorf("layer %d media type %s", i, l.MediaType)
		}
		lay.layers = append(lay.layers, blob(l))
	}
	return lay
}

// extract unpacks every layer into root, checks each layer's diff_id, and
// returns the headers by path.
func extract(t *testing.T, lay layout, root string) map[string]*tar.Header {
	t.Helper()
	headers := map[string]*tar.Header{}
	for i, compressed := range lay.layers {
		zr, err := gzip.NewReader(bytes.NewReader(compressed))
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		if sum := sha256.Sum256(raw); "sha256:"+hex.EncodeToString(sum[:]) != lay.config.RootFS.DiffIDs[i].String() {
			t.Errorf("layer %d: diff_id %s, uncompressed sha256:%x", i, lay.config.RootFS.DiffIDs[i], sum)
		}
		tr := tar.NewReader(bytes.NewReader(raw))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("layer %d: %v", i, err)
			}
			if strings.HasPrefix(h.Name, "/") || strings.Contains(h.Name, "..") {
				t.Fatalf("layer %d: unsafe path %q", i, h.Name)
			}
			headers[h.Name] = h
			dst := filepath.Join(root, h.Name)
			switch h.Typeflag {
			case tar.TypeDir:
				os.MkdirAll(dst, 0o755)
			case tar.TypeReg:
				os.MkdirAll(filepath.Dir(dst), 0o755)
				body, _ := io.ReadAll(tr)
				if err := os.WriteFile(dst, body, os.FileMode(h.Mode)&0o777); err != nil {
					t.Fatal(err)
				}
			default:
				t.Errorf("layer %d: %s has type %c, want only files and directories", i, h.Name, h.Typeflag)
			}
		}
	}
	return headers
}

// fileSum is the hex sha256 of a file.
func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
