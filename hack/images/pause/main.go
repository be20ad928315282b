// Command pause is the sandbox ("pause") container of our end-to-end node: it
// holds a pod's namespaces open and does nothing else. When it is PID 1 of a pod
// that shares its process namespace it reaps orphaned children. SIGINT and
// SIGTERM end it with status 0.
//
// It exists so that the e2e node needs no image from a registry: containerd's
// sandbox_image points at the image that hack/images builds from this binary.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/xdna-whisper/xdna-whisper/internal/version"
)

func main() {
	switch {
	case len(os.Args) == 1:
	case len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "version"):
		fmt.Println(version.String("pause"))
		return
	default:
		fmt.Fprintf(os.Stderr, "pause: unexpected arguments %q; usage: pause [--version]\n", os.Args[1:])
		os.Exit(2)
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			return
		}
		reapChildren()
	}
}

// reapChildren collects the exit status of every child that has ended, so that
// orphans re-parented to the pause process do not linger as zombies.
func reapChildren() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
