package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// identity is what every image is stamped with: its name and the build it comes from.
type identity struct {
	// Repository is the prefix of every image name, e.g. "ghcr.io/xdna-whisper".
	Repository string
	// Tag is the tag of every image, e.g. "v0.1.0".
	Tag string
	// Version and Revision are the release version and the git commit.
	Version, Revision string
	// Source is the project's repository URL.
	Source string
	// Created is the build time; it is also every file's modification time,
	// so the same inputs give the same image digest.
	Created time.Time
	// Arch is the GOARCH the binaries are built for.
	Arch string
	// CABundle is a PEM file copied to /etc/ssl/certs/ca-certificates.crt, or "" for none.
	CABundle string
}

// Standard image paths and environment.
const (
	caBundlePath = "/etc/ssl/certs/ca-certificates.crt"
	nonrootHome  = "/home/nonroot"
	imagePath    = "/usr/local/bin:/usr/bin:/bin"
)

// reference returns the full image reference of component n, validated.
func (id identity) reference(n string) (name.Tag, error) {
	ref := fmt.Sprintf("%s/%s:%s", strings.TrimSuffix(id.Repository, "/"), n, id.Tag)
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return name.Tag{}, fmt.Errorf("image reference %q: %w", ref, err)
	}
	return tag, nil
}

// labels returns the org.opencontainers.image.* labels of component n.
func (id identity) labels(n string, c component) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       n,
		"org.opencontainers.image.description": c.description,
		"org.opencontainers.image.version":     id.Version,
		"org.opencontainers.image.revision":    id.Revision,
		"org.opencontainers.image.created":     id.Created.UTC().Format(time.RFC3339),
	}
	if id.Source != "" {
		l["org.opencontainers.image.source"] = id.Source
		l["org.opencontainers.image.url"] = id.Source
	}
	return l
}

// buildImage assembles the image of component n around the static binary at
// binPath: a base layer (unless the component needs none) and a layer holding
// the binary, run as the component's non-root user.
func buildImage(n, binPath string, id identity) (v1.Image, error) {
	c, err := lookupComponent(n)
	if err != nil {
		return nil, err
	}
	if err := checkStaticBinary(binPath, id.Arch); err != nil {
		return nil, fmt.Errorf("image %s: %w", n, err)
	}
	var adds []mutate.Addendum
	if c.base {
		base, err := baseLayer(id)
		if err != nil {
			return nil, fmt.Errorf("image %s: base layer: %w", n, err)
		}
		adds = append(adds, mutate.Addendum{Layer: base, History: history(id, "base: passwd, group, CA bundle, /tmp, "+nonrootHome)})
	}
	bin, err := binaryLayer(c.path, binPath, id.Created)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", n, err)
	}
	adds = append(adds, mutate.Addendum{Layer: bin, History: history(id, "binary: "+c.path)})

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, configFile(n, c, id))
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", n, err)
	}
	img, err = mutate.Append(img, adds...)
	if err != nil {
		return nil, fmt.Errorf("image %s: layers: %w", n, err)
	}
	return mutate.Annotations(img, id.labels(n, c)).(v1.Image), nil
}

// configFile is the OCI image configuration of component n (without layers).
func configFile(n string, c component, id identity) *v1.ConfigFile {
	cfg := v1.Config{
		User:       fmt.Sprintf("%d:%d", c.uid, c.uid),
		Entrypoint: []string{c.path},
		Env:        []string{"PATH=" + imagePath},
		WorkingDir: "/",
		Labels:     id.labels(n, c),
	}
	if c.base {
		cfg.Env = append(cfg.Env, "HOME="+nonrootHome)
		cfg.WorkingDir = nonrootHome
	}
	return &v1.ConfigFile{
		Architecture: id.Arch,
		OS:           "linux",
		Created:      v1.Time{Time: id.Created},
		Config:       cfg,
		RootFS:       v1.RootFS{Type: "layers"},
	}
}

// history is a config history entry for a layer made by this builder.
func history(id identity, what string) v1.History {
	return v1.History{Created: v1.Time{Time: id.Created}, CreatedBy: "xdna-whisper hack/images " + what}
}

// entry is one file or directory of a layer.
type entry struct {
	name string // absolute path in the image
	mode int64  // permission bits, including sticky
	uid  int    // owner and group
	dir  bool
	data []byte
}

// baseLayer holds the files every non-root image needs.
func baseLayer(id identity) (v1.Layer, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:%s:/sbin/nologin\n", nonrootUID, nonrootUID, nonrootHome)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", nonrootUID)
	entries := []entry{
		{name: "/etc", mode: 0o755, dir: true},
		{name: "/etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "/etc/group", mode: 0o644, data: []byte(group)},
		{name: "/home", mode: 0o755, dir: true},
		{name: nonrootHome, mode: 0o700, uid: nonrootUID, dir: true},
		{name: "/tmp", mode: 0o1777, dir: true},
	}
	if id.CABundle != "" {
		pem, err := os.ReadFile(id.CABundle)
		if err != nil {
			return nil, fmt.Errorf("CA bundle: %w", err)
		}
		if !bytes.Contains(pem, []byte("-----BEGIN CERTIFICATE-----")) {
			return nil, fmt.Errorf("CA bundle %s: no PEM certificate in it", id.CABundle)
		}
		entries = append(entries, parents(caBundlePath, "/etc")...)
		entries = append(entries, entry{name: caBundlePath, mode: 0o644, data: pem})
	}
	return layer(entries, id.Created)
}

// binaryLayer holds the binary at binPath as dst (mode 0755, owned by root).
func binaryLayer(dst, binPath string, mtime time.Time) (v1.Layer, error) {
	data, err := os.ReadFile(binPath)
	if err != nil {
		return nil, fmt.Errorf("binary: %w", err)
	}
	entries := append(parents(dst, ""), entry{name: dst, mode: 0o755, data: data})
	return layer(entries, mtime)
}

// parents returns directory entries (0755, root) for every ancestor of p below
// the directory skip, outermost first.
func parents(p, skip string) []entry {
	var dirs []entry
	for d := path.Dir(p); d != "/" && d != skip; d = path.Dir(d) {
		dirs = append([]entry{{name: d, mode: 0o755, dir: true}}, dirs...)
	}
	return dirs
}

// layer writes entries into an uncompressed tar and wraps it as an OCI layer
// (gzip, compressed once and cached).
func layer(entries []entry, mtime time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name:    strings.TrimPrefix(e.name, "/"),
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.uid,
			ModTime: mtime,
		}
		if e.dir {
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}
