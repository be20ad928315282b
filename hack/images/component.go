package main

import (
	"fmt"
	"sort"
	"strings"
)

// Users and groups of the images. nonroot matches the distroless convention;
// pause matches the upstream sandbox image.
const (
	nonrootUID = 65532
	pauseUID   = 65535
)

// component describes one image: which binary it carries, where, and as whom it runs.
type component struct {
	// description becomes the org.opencontainers.image.description label.
	description string
	// path is the binary's absolute path inside the image; it is the entrypoint.
	path string
	// uid is the numeric user and group the image runs as.
	uid int
	// base says whether the image gets the base layer (passwd, group, CA
	// bundle, /tmp, a home directory); pause needs none of it.
	base bool
}

// components is every image this builder knows. The first four are the
// product images (also built by the Dockerfile, one target each); pause and
// e2e-agent exist only for the end-to-end tests.
var components = map[string]component{
	"whisper-encoder": {
		description: "Whisper encoder: stages ONNX weights to BF16 and serves log-mel or audio in, hidden states out, on an XDNA NPU or the CPU",
		path:        "/usr/local/bin/whisper-encoder", uid: nonrootUID, base: true,
	},
	"xdna-device-plugin": {
		description: "Kubernetes device plugin advertising AMD XDNA NPUs as amd.com/npu",
		path:        "/usr/local/bin/xdna-device-plugin", uid: nonrootUID, base: true,
	},
	"xdna-dra-driver": {
		description: "Kubernetes DRA driver publishing AMD XDNA NPUs as npu.amd.com devices with shareable hardware contexts",
		path:        "/usr/local/bin/xdna-dra-driver", uid: nonrootUID, base: true,
	},
	"whisper-operator": {
		description: "Kubernetes operator for WhisperEncoder resources: weight staging, cache, encoder workloads",
		path:        "/usr/local/bin/whisper-operator", uid: nonrootUID, base: true,
	},
	"pause": {
		description: "Pod sandbox (pause) image for the xdna-whisper end-to-end node",
		path:        "/pause", uid: pauseUID, base: false,
	},
	"e2e-agent": {
		description: "Test-only HTTP file server, probe target and client for the xdna-whisper end-to-end tests",
		path:        "/usr/local/bin/e2e-agent", uid: nonrootUID, base: true,
	},
}

// productImages are the components the Dockerfile must build, one target each.
var productImages = []string{"whisper-encoder", "xdna-device-plugin", "xdna-dra-driver", "whisper-operator"}

// lookupComponent returns the component called name, or an error listing the known ones.
func lookupComponent(name string) (component, error) {
	c, ok := components[name]
	if !ok {
		return component{}, fmt.Errorf("unknown image %q (want one of %s)", name, strings.Join(componentNames(), ", "))
	}
	return c, nil
}

// componentNames lists the known image names in order.
func componentNames() []string {
	names := make([]string, 0, len(components))
	for n := range components {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
