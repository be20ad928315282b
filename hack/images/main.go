// Command images assembles the project's OCI images without a container engine,
// with github.com/google/go-containerregistry: one image per static binary, run
// as a non-root user, labelled org.opencontainers.image.*, each written as an
// OCI image layout in a tar file that `ctr -n k8s.io images import` accepts.
//
//	go run ./hack/images -tag v0.1.0 -version v0.1.0 -revision $(git rev-parse HEAD) \
//	    -created 2026-01-02T03:04:05Z -out bin/images \
//	    whisper-encoder=bin/whisper-encoder pause=bin/pause
//
// For each image it prints "<reference> <manifest digest> <tar file>". The same
// inputs give byte-identical tar files. `make images` runs it.
//
//	go run ./hack/images dockerfile > Dockerfile
//
// writes the Dockerfile that builds the same product images with a container
// engine (`make dockerfile`); components are the one description of both.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/xdna-whisper/xdna-whisper/internal/version"
)

// usageError marks a command-line mistake (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "images: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// request is one NAME=BINARY argument.
type request struct{ name, binary string }

// run parses args and builds every requested image.
func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("images", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var id identity
	var out, created string
	fs.StringVar(&out, "out", "bin/images", "directory for the <name>.tar files")
	fs.StringVar(&id.Repository, "repository", "ghcr.io/xdna-whisper", "image name prefix")
	fs.StringVar(&id.Tag, "tag", "", "tag of every image (required)")
	fs.StringVar(&id.Version, "version", "", "org.opencontainers.image.version (default: the tag)")
	fs.StringVar(&id.Revision, "revision", "unknown", "org.opencontainers.image.revision: the git commit")
	fs.StringVar(&created, "created", os.Getenv("SOURCE_DATE_EPOCH"), "build time, RFC 3339 or Unix seconds (default $SOURCE_DATE_EPOCH; required)")
	fs.StringVar(&id.Source, "source", "https://github.com/xdna-whisper/xdna-whisper", "org.opencontainers.image.source and .url")
	fs.StringVar(&id.Arch, "arch", runtime.GOARCH, "GOARCH of the binaries (checked against each ELF header)")
	fs.StringVar(&id.CABundle, "ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "PEM CA bundle for the base layer (\"\" for none)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: images [flags] NAME=BINARY...\n\nNAME is one of %s.\n\nflags:\n", strings.Join(componentNames(), ", "))
		fs.PrintDefaults()
	}
	if len(args) == 1 && args[0] == "dockerfile" {
		return writeDockerfile(stdout)
	}
	if len(args) == 1 && args[0] == "--version" {
		fmt.Fprintln(stdout, version.String("images"))
		return nil
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	reqs, err := parseRequests(fs.Args())
	if err != nil {
		return usageError{err}
	}
	if err := completeIdentity(&id, created); err != nil {
		return usageError{err}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, r := range reqs {
		line, err := buildOne(r, id, out)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, line)
	}
	return nil
}

// parseRequests reads NAME=BINARY arguments; each name at most once.
func parseRequests(args []string) ([]request, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("no image requested: want NAME=BINARY arguments, NAME one of %s", strings.Join(componentNames(), ", "))
	}
	seen := map[string]bool{}
	var reqs []request
	for _, a := range args {
		n, bin, ok := strings.Cut(a, "=")
		if !ok || n == "" || bin == "" {
			return nil, fmt.Errorf("argument %q: want NAME=BINARY", a)
		}
		if _, err := lookupComponent(n); err != nil {
			return nil, fmt.Errorf("argument %q: %w", a, err)
		}
		if seen[n] {
			return nil, fmt.Errorf("argument %q: image %s requested twice", a, n)
		}
		seen[n] = true
		reqs = append(reqs, request{n, bin})
	}
	return reqs, nil
}

// completeIdentity checks the flags and fills defaults.
func completeIdentity(id *identity, created string) error {
	if id.Tag == "" {
		return errors.New("-tag is required")
	}
	if id.Version == "" {
		id.Version = id.Tag
	}
	t, err := parseCreated(created)
	if err != nil {
		return err
	}
	id.Created = t
	if _, err := id.reference("pause"); err != nil {
		return fmt.Errorf("-repository %q with -tag %q: %w", id.Repository, id.Tag, err)
	}
	return nil
}

// parseCreated reads an RFC 3339 time or Unix seconds, in UTC, to the second.
func parseCreated(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("-created (or $SOURCE_DATE_EPOCH) is required so that builds are reproducible")
	}
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(secs, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("-created %q: want RFC 3339 (2026-01-02T03:04:05Z) or Unix seconds", s)
	}
	return t.UTC().Truncate(time.Second), nil
}

// buildOne builds and writes one image and returns its report line.
func buildOne(r request, id identity, out string) (string, error) {
	ref, err := id.reference(r.name)
	if err != nil {
		return "", err
	}
	img, err := buildImage(r.name, r.binary, id)
	if err != nil {
		return "", err
	}
	digest, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("image %s: %w", r.name, err)
	}
	dst := filepath.Join(out, r.name+".tar")
	if err := writeArchive(dst, ref.String(), img, id.Created); err != nil {
		return "", fmt.Errorf("image %s: %w", r.name, err)
	}
	return fmt.Sprintf("%s %s %s", ref.String(), digest, dst), nil
}
