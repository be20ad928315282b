// Package version holds the build identity of every binary, set by the Makefile
// through -ldflags "-X github.com/xdna-whisper/xdna-whisper/internal/version.Version=...".
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release version ("v0.1.0") or "dev" for untagged builds.
var Version = "dev"

// Commit is the git commit the binary was built from, or "unknown".
var Commit = "unknown"

// String is the one-line identity printed by every binary's --version flag:
// "<program> <version> (commit <commit>, <go version>)".
func String(program string) string {
	commit := Commit
	if commit == "unknown" {
		commit = vcsRevision()
	}
	return fmt.Sprintf("%s %s (commit %s, %s)", program, Version, commit, runtime.Version())
}

// vcsRevision returns the revision embedded by the go command, if any.
func vcsRevision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			return s.Value
		}
	}
	return "unknown"
}
