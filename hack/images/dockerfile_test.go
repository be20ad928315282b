package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// stage is what a Dockerfile stage sets, after inheriting from its base stage.
type stage struct {
	user, workdir string
	env, labels   map[string]string
	entrypoint    []string
	copies        map[string]string // destination → source
}

// parseDockerfile reads the instructions this project's Dockerfile uses into
// stages by name. It understands line continuations, FROM ... AS, USER,
// WORKDIR, ENV and LABEL with key=value pairs, JSON ENTRYPOINT and COPY.
func parseDockerfile(t *testing.T, path string) map[string]*stage {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	stages := map[string]*stage{}
	var cur *stage
	for n, line := range logicalLines(string(raw)) {
		instr, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			f := strings.Fields(rest)
			if len(f) != 3 || !strings.EqualFold(f[1], "AS") {
				t.Fatalf("%s: instruction %d: FROM %q, want FROM image AS name", path, n, rest)
			}
			cur = &stage{env: map[string]string{}, labels: map[string]string{}, copies: map[string]string{}}
			if parent, ok := stages[f[0]]; ok {
				*cur = parent.clone()
			}
			stages[f[2]] = cur
		case "USER":
			cur.user = rest
		case "WORKDIR":
			cur.workdir = rest
		case "ENV":
			parsePairs(t, rest, cur.env)
		case "LABEL":
			parsePairs(t, rest, cur.labels)
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &cur.entrypoint); err != nil {
				t.Fatalf("%s: ENTRYPOINT %s: want exec (JSON) form: %v", path, rest, err)
			}
		case "COPY":
			f := strings.Fields(rest)
			cur.copies[f[len(f)-1]] = f[len(f)-2]
		}
	}
	return stages
}

func (s *stage) clone() stage {
	c := *s
	c.env, c.labels, c.copies = cloneMap(s.env), cloneMap(s.labels), map[string]string{}
	c.entrypoint = slices.Clone(s.entrypoint)
	return c
}

func cloneMap(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// logicalLines joins continued lines and drops comments and blank lines.
func logicalLines(s string) []string {
	var out []string
	var cur strings.Builder
	for _, l := range strings.Split(s, "\n") {
		t := strings.TrimSpace(l)
		if cur.Len() == 0 && (t == "" || strings.HasPrefix(t, "#")) {
			continue
		}
		if body, cont := strings.CutSuffix(t, "\\"); cont {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(t)
		out = append(out, cur.String())
		cur.Reset()
	}
	return out
}

// parsePairs reads key=value pairs, values optionally double-quoted.
func parsePairs(t *testing.T, s string, into map[string]string) {
	t.Helper()
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			t.Fatalf("pair %q: want key=value", s)
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				t.Fatalf("pair %q: %v", s, err)
			}
			v, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			v, rest, _ = strings.Cut(rest, " ")
		}
		into[k], s = v, rest
	}
}

func TestDockerfileMatchesDaemonlessBuild(t *testing.T) {
	stages := parseDockerfile(t, filepath.Join(repoRoot, "Dockerfile"))
	id := identity{Version: "${VERSION}", Revision: "${COMMIT}", Source: "https://github.com/xdna-whisper/xdna-whisper"}
	for _, name := range productImages {
		t.Run(name, func(t *testing.T) {
			s, ok := stages[name]
			if !ok {
				t.Fatalf("Dockerfile has no stage %q", name)
			}
			c := components[name]
			cf := configFile(name, c, id)
			if s.user != cf.Config.User {
				t.Errorf("USER %q, daemonless %q", s.user, cf.Config.User)
			}
			if s.workdir != cf.Config.WorkingDir {
				t.Errorf("WORKDIR %q, daemonless %q", s.workdir, cf.Config.WorkingDir)
			}
			if !slices.Equal(s.entrypoint, cf.Config.Entrypoint) {
				t.Errorf("ENTRYPOINT %q, daemonless %q", s.entrypoint, cf.Config.Entrypoint)
			}
			var env []string
			for k, v := range s.env {
				env = append(env, k+"="+v)
			}
			slices.Sort(env)
			if want := slices.Sorted(slices.Values(cf.Config.Env)); !slices.Equal(env, want) {
				t.Errorf("ENV %q, daemonless %q", env, want)
			}
			wantLabels := cf.Config.Labels
			wantLabels["org.opencontainers.image.created"] = "${CREATED}"
			if fmt.Sprint(s.labels) != fmt.Sprint(wantLabels) {
				t.Errorf("LABELs\n %v\ndaemonless\n %v", s.labels, wantLabels)
			}
			if src := s.copies[c.path]; src != "/out/"+name {
				t.Errorf("COPY to %s from %q, want /out/%s", c.path, src, name)
			}
		})
	}
	raw, _ := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	for _, want := range []string{
		fmt.Sprintf(`nonroot:x:%d:%d:nonroot:%s:/sbin/nologin`, nonrootUID, nonrootUID, nonrootHome),
		fmt.Sprintf(`nonroot:x:%d:`, nonrootUID),
		"chmod 0700 " + "/rootfs" + nonrootHome,
		"chmod 1777 /rootfs/tmp",
		"/rootfs" + caBundlePath,
		"CGO_ENABLED=0",
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("Dockerfile lacks %q, which the daemonless base layer has", want)
		}
	}
}

func TestDockerfileIsGenerated(t *testing.T) {
	var want strings.Builder
	if err := writeDockerfile(&want); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want.String() {
		t.Fatal("Dockerfile differs from what hack/images generates from its components: run `make dockerfile` and commit")
	}
}
