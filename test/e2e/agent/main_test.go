package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startServer runs `serve` on a free loopback port and returns its base URL.
func startServer(t *testing.T, dir string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, []string{"-listen", addr, "-dir", dir}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	base := "http://" + addr
	for deadline := time.Now().Add(5 * time.Second); ; {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			return base
		}
		if time.Now().After(deadline) {
			t.Fatalf("server on %s did not come up", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeAndGet(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "model.onnx"), []byte("weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := startServer(t, dir)
	out := filepath.Join(t.TempDir(), "got")
	tests := []struct {
		name    string
		url     string
		wantErr string // "" for success
		want    string // body written to out
	}{
		{"health", base + "/healthz", "", "ok\n"},
		{"ready", base + "/readyz", "", "ok\n"},
		{"file", base + "/files/model.onnx", "", "weights"},
		{"missing file", base + "/files/nope", "status 404", ""},
		{"unknown path", base + "/nope", "status 404", ""},
		{"refused", "http://127.0.0.1:1/", "connection refused", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(out)
			err := get(context.Background(), []string{"-timeout", "5s", "-o", out, tt.url})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("get %s: error %v, want one containing %q", tt.url, err, tt.wantErr)
				}
				if _, statErr := os.Stat(out); statErr == nil {
					t.Errorf("failed get left %s behind", out)
				}
				return
			}
			if err != nil {
				t.Fatalf("get %s: %v", tt.url, err)
			}
			if got, _ := os.ReadFile(out); string(got) != tt.want {
				t.Errorf("get %s wrote %q, want %q", tt.url, got, tt.want)
			}
		})
	}
}

func TestWhoami(t *testing.T) {
	base := startServer(t, "")
	resp, err := http.Get(base + "/whoami")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var id identity
	if err := json.NewDecoder(resp.Body).Decode(&id); err != nil {
		t.Fatal(err)
	}
	if id.UID != os.Getuid() || id.GID != os.Getgid() || !strings.HasPrefix(id.Version, "e2e-agent ") {
		t.Errorf("whoami = %+v, want uid %d gid %d", id, os.Getuid(), os.Getgid())
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"get"}, {"get", "a", "b"}, {"serve", "-bogus"}} {
		if _, ok := run(context.Background(), args).(usageError); !ok {
			t.Errorf("run(%q): want a usage error", args)
		}
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if err := get(context.Background(), []string{"-in-cluster", "/version"}); err == nil || !strings.Contains(err.Error(), "in-cluster") {
		t.Errorf("get -in-cluster outside a pod: %v, want an in-cluster error", err)
	}
}
