package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// capIPCLock is CAP_IPC_LOCK's bit in the capability sets of /proc/PID/status.
const capIPCLock = 14

// inspection is what `inspect` reports: what a container sees of the devices,
// environment and limits a CDI spec (or a device plugin) gave it.
type inspection struct {
	UID   int               `json:"uid"`
	Env   map[string]string `json:"env"`
	Paths []pathInfo        `json:"paths"`
	// MemlockSoft and MemlockHard are RLIMIT_MEMLOCK in bytes; -1 is unlimited.
	MemlockSoft int64 `json:"memlockSoft"`
	MemlockHard int64 `json:"memlockHard"`
	// CapIPCLock: CAP_IPC_LOCK is in the effective set (no memlock limit applies).
	CapIPCLock bool `json:"capIPCLock"`
}

// pathInfo describes one path: its file type, permission bits, owner and
// group and, for a device node, its major and minor numbers (0 otherwise);
// Error when it cannot be stat'ed.
type pathInfo struct {
	Path  string `json:"path"`
	Type  string `json:"type,omitempty"`
	Mode  string `json:"mode,omitempty"`
	UID   uint32 `json:"uid"`
	GID   uint32 `json:"gid"`
	Major uint32 `json:"major"`
	Minor uint32 `json:"minor"`
	Error string `json:"error,omitempty"`
}

// inspect prints an inspection of this process as JSON: the environment
// variables whose names start with -env-prefix, each PATH argument, its
// RLIMIT_MEMLOCK and whether CAP_IPC_LOCK is effective.
func inspect(w io.Writer, args []string) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	prefix := fs.String("env-prefix", "XDNA_", "report environment variables whose names start with this")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	in := inspection{UID: os.Getuid(), Env: envWithPrefix(os.Environ(), *prefix), Paths: []pathInfo{}}
	for _, p := range fs.Args() {
		in.Paths = append(in.Paths, statPath(p))
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		return fmt.Errorf("getrlimit RLIMIT_MEMLOCK: %w", err)
	}
	in.MemlockSoft, in.MemlockHard = rlimitBytes(lim.Cur), rlimitBytes(lim.Max)
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	if in.CapIPCLock, err = effectiveCap(string(status), capIPCLock); err != nil {
		return fmt.Errorf("/proc/self/status: %w", err)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(in)
}

// envWithPrefix maps the NAME=VALUE entries of env whose NAME starts with prefix.
func envWithPrefix(env []string, prefix string) map[string]string {
	out := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out
}

// rlimitBytes is a limit as JSON reports it: -1 for RLIM_INFINITY.
func rlimitBytes(v uint64) int64 {
	if v == unix.RLIM_INFINITY || v > 1<<62 {
		return -1
	}
	return int64(v)
}

// statPath describes path without following a final symlink.
func statPath(path string) pathInfo {
	pi := pathInfo{Path: path}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		pi.Error = (&fs.PathError{Op: "lstat", Path: path, Err: err}).Error()
		return pi
	}
	pi.Mode = fmt.Sprintf("%04o", st.Mode&07777)
	pi.UID, pi.GID = st.Uid, st.Gid
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		pi.Type = "char"
	case unix.S_IFBLK:
		pi.Type = "block"
	case unix.S_IFDIR:
		pi.Type = "dir"
	case unix.S_IFREG:
		pi.Type = "file"
	case unix.S_IFLNK:
		pi.Type = "symlink"
	default:
		pi.Type = "other"
	}
	if pi.Type == "char" || pi.Type == "block" {
		pi.Major, pi.Minor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
	}
	return pi
}

// effectiveCap reports whether capability bit capBit is set in the CapEff
// line of a /proc/PID/status text.
func effectiveCap(status string, capBit uint) (bool, error) {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != "CapEff" {
			continue
		}
		val = strings.TrimSpace(val)
		mask, err := strconv.ParseUint(val, 16, 64)
		if err != nil {
			return false, fmt.Errorf("CapEff %q: want a 64-bit hexadecimal mask: %w", val, err)
		}
		return mask&(1<<capBit) != 0, nil
	}
	return false, errors.New("no CapEff line")
}
