package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// makeCommand is one command `make -n images` would run: go build or the image builder.
type makeCommand struct {
	ldflags  string   // go build: the -ldflags value
	out      string   // go build: the -o value
	packages []string // go build: the packages
	builder  []string // go run ./hack/images: the builder's arguments
}

// makeImagesPlan asks make for the commands of `make images` with the given identity,
// without running them (make -n), and parses them.
func makeImagesPlan(t *testing.T, vars ...string) []makeCommand {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	cmd := exec.Command("make", append([]string{"-n", "-s", "images"}, vars...)...)
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("make -n images: %v", err)
	}
	var plan []makeCommand
	for _, line := range strings.Split(strings.ReplaceAll(string(out), "\\\n", " "), "\n") {
		f := shellFields(t, line)
		switch {
		case len(f) > 3 && f[0] == "CGO_ENABLED=0" && f[1] == "go" && f[2] == "build":
			var c makeCommand
			for i := 3; i < len(f); i++ {
				switch f[i] {
				case "-ldflags":
					i++
					c.ldflags = f[i]
				case "-o":
					i++
					c.out = f[i]
				case "-trimpath":
				default:
					c.packages = append(c.packages, f[i])
				}
			}
			plan = append(plan, c)
		case len(f) > 3 && f[0] == "go" && f[1] == "run" && f[2] == "./hack/images":
			plan = append(plan, makeCommand{builder: f[3:]})
		}
	}
	return plan
}

// shellFields splits a command line into words, honouring single quotes (all make -n prints).
func shellFields(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range line {
		switch {
		case r == '\'':
			quoted, inWord = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("unbalanced quote in %q", line)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// TestMakeImagesStampsVersions follows the Makefile's own recipe for `make images` (its
// go build commands with its -ldflags, then its image builder arguments), with outputs moved
// to a temporary directory, and checks that every product image says the version and commit
// given to make: in its labels and in its binary's --version.
func TestMakeImagesStampsVersions(t *testing.T) {
	const version, commit = "v7.7.7-make", "fedcba9876543210fedcba9876543210fedcba98"
	plan := makeImagesPlan(t, "VERSION="+version, "COMMIT="+commit, "IMAGE_TAG=maketest", "CREATED=1767225600")
	tmp := t.TempDir()
	binDir := filepath.Join(tmp, "bin")
	os.MkdirAll(binDir, 0o755)
	binaries := map[string]string{} // the path make uses → where this test built it
	var builder []string
	for _, c := range plan {
		if c.builder != nil {
			builder = c.builder
			continue
		}
		if !strings.Contains(c.ldflags, "internal/version.Version="+version) || !strings.Contains(c.ldflags, "internal/version.Commit="+commit) {
			t.Errorf("make builds %v with -ldflags %q: no version/commit stamp", c.packages, c.ldflags)
		}
		for _, pkg := range c.packages {
			made := c.out
			if strings.HasSuffix(c.out, "/") {
				made = c.out + path.Base(pkg)
			}
			dst := filepath.Join(binDir, path.Base(made))
			cmd := exec.Command("go", "build", "-trimpath", "-ldflags", c.ldflags, "-o", dst, pkg)
			cmd.Dir = repoRoot
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go build %s: %v\n%s", pkg, err, out)
			}
			binaries[made] = dst
		}
	}
	if builder == nil {
		t.Fatal("make -n images runs no go run ./hack/images")
	}
	// The builder's arguments as make gives them, with the output and binaries moved.
	var args []string
	images := filepath.Join(tmp, "images")
	for i := 0; i < len(builder); i++ {
		a := builder[i]
		if a == "-out" {
			args = append(args, a, images)
			i++
			continue
		}
		if name, bin, ok := strings.Cut(a, "="); ok && !strings.HasPrefix(a, "-") {
			if binaries[bin] == "" {
				t.Fatalf("make packs %s from %s, which no go build of make -n images produces", name, bin)
			}
			a = name + "=" + binaries[bin]
		}
		args = append(args, a)
	}
	var stdout, stderr bytes.Buffer
	if err := run(args, &stdout, &stderr); err != nil {
		t.Fatalf("images %q: %v\n%s", args, err, stderr.String())
	}
	for _, name := range productImages {
		t.Run(name, func(t *testing.T) {
			c := components[name]
			lay := readLayout(t, filepath.Join(images, name+".tar"))
			if u := lay.config.Config.User; u != fmt.Sprintf("%d:%d", nonrootUID, nonrootUID) {
				t.Errorf("user %q, want non-root %d", u, nonrootUID)
			}
			if l := lay.config.Config.Labels; l["org.opencontainers.image.version"] != version || l["org.opencontainers.image.revision"] != commit {
				t.Errorf("labels version %q revision %q, want %q %q", l["org.opencontainers.image.version"], l["org.opencontainers.image.revision"], version, commit)
			}
			root := t.TempDir()
			extract(t, lay, root)
			out, err := exec.Command(filepath.Join(root, c.path), "--version").CombinedOutput()
			want := fmt.Sprintf("%s %s (commit %s, %s)", name, version, commit, runtime.Version())
			if err != nil || strings.TrimSpace(string(out)) != want {
				t.Errorf("%s --version: %q, %v; want %q", c.path, strings.TrimSpace(string(out)), err, want)
			}
		})
	}
}
