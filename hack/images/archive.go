package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/xdna-whisper/xdna-whisper/internal/atomicfile"
)

// Annotations that name an image inside an OCI layout. containerd's importer
// (ctr images import) reads the first; the second is the OCI standard one.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// writeArchive writes img as an OCI image layout in a tar file at dst, naming it
// ref in index.json. The file appears complete or not at all (temp file + rename);
// every tar header has mtime, so the same image gives the same bytes.
func writeArchive(dst, ref string, img v1.Image, mtime time.Time) error {
	err := atomicfile.WriteFunc(dst, 0o644, func(w io.Writer) error { return writeLayout(w, ref, img, mtime) })
	if err != nil {
		return fmt.Errorf("archive %s: %w", dst, err)
	}
	return nil
}

// writeLayout streams the layout: oci-layout, index.json, then every blob
// (manifest, config, layers) under blobs/sha256/.
func writeLayout(w io.Writer, ref string, img v1.Image, mtime time.Time) error {
	manifest, err := img.RawManifest()
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("manifest digest: %w", err)
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	configName, err := img.ConfigName()
	if err != nil {
		return fmt.Errorf("config digest: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	index := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType:   types.OCIManifestSchema1,
			Digest:      digest,
			Size:        int64(len(manifest)),
			Annotations: map[string]string{annotationContainerdName: ref, annotationRefName: ref},
			Platform:    &v1.Platform{OS: cf.OS, Architecture: cf.Architecture},
		}},
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return fmt.Errorf("index.json: %w", err)
	}

	tw := tar.NewWriter(w)
	add := func(name string, size int64, body io.Reader) error {
		h := &tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: mtime, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if n, err := io.Copy(tw, body); err != nil || n != size {
			return fmt.Errorf("%s: wrote %d of %d bytes: %v", name, n, size, err)
		}
		return nil
	}
	addBytes := func(name string, b []byte) error { return add(name, int64(len(b)), bytes.NewReader(b)) }
	if err := addDir(tw, "blobs/", mtime); err != nil {
		return err
	}
	if err := addDir(tw, "blobs/sha256/", mtime); err != nil {
		return err
	}
	if err := addBytes("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := addBytes("index.json", indexJSON); err != nil {
		return err
	}
	if err := addBytes(blobName(digest), manifest); err != nil {
		return err
	}
	if err := addBytes(blobName(configName), config); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("layers: %w", err)
	}
	for i, l := range layers {
		if err := addLayer(add, l); err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
	}
	return tw.Close()
}

// addLayer adds the compressed blob of l.
func addLayer(add func(string, int64, io.Reader) error, l v1.Layer) error {
	d, err := l.Digest()
	if err != nil {
		return err
	}
	size, err := l.Size()
	if err != nil {
		return err
	}
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	return add(blobName(d), size, rc)
}

// addDir adds a directory entry.
func addDir(tw *tar.Writer, name string, mtime time.Time) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, ModTime: mtime, Typeflag: tar.TypeDir}); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// blobName is the layout path of the blob with digest h.
func blobName(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }
