// Command e2e-agent is the test-only workload of the end-to-end scenario, the
// way agnhost is for Kubernetes' own e2e tests: a small static binary in an
// image of our own, with no registry needed.
//
//	e2e-agent serve [-listen :8080] [-dir DIR] [-rate BYTES]   HTTP: /healthz /readyz /whoami /version, files under /files/
//	e2e-agent get [-in-cluster] [-timeout 10s] [-o FILE] URL
//	e2e-agent npy-compare [-tol 1e-3] GOT.npy WANT.npy
//	e2e-agent inspect [-env-prefix XDNA_] [PATH...]
//	e2e-agent version
//
// `get` is the client the scenario runs on the node or, through kubectl exec,
// inside a pod; with -in-cluster it authenticates to the API server with the
// pod's service-account token, and a URL that starts with "/" is sent to
// https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT.
//
// `serve -rate` sends files at most BYTES per second (a model download slow
// enough for the scenario to act while staging runs). `npy-compare` checks that
// two float32 .npy files have the same shape and agree within tol·max|WANT|.
// `inspect` prints, as JSON, what the container sees of what a CDI spec gave it:
// the XDNA_* environment, each PATH's type and device numbers, RLIMIT_MEMLOCK and
// whether CAP_IPC_LOCK is effective.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/xdna-whisper/xdna-whisper/internal/version"
)

// usageError marks a command-line mistake (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }

const usage = "usage: e2e-agent serve [-listen :8080] [-dir DIR] [-rate BYTES] | get [-in-cluster] [-timeout 10s] [-o FILE] URL | npy-compare [-tol 1e-3] GOT.npy WANT.npy | inspect [-env-prefix XDNA_] [PATH...] | version"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e-agent: %v\n", err)
		if _, ok := err.(usageError); ok {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError{errors.New(usage)}
	}
	switch args[0] {
	case "version", "--version":
		fmt.Println(version.String("e2e-agent"))
		return nil
	case "serve":
		return serve(ctx, args[1:])
	case "get":
		return get(ctx, args[1:])
	case "npy-compare":
		return npyCompare(os.Stdout, args[1:])
	case "inspect":
		return inspect(os.Stdout, args[1:])
	default:
		return usageError{fmt.Errorf("unknown subcommand %q; %s", args[0], usage)}
	}
}

// serve runs the HTTP server until ctx ends.
func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", ":8080", "address to listen on")
	dir := fs.String("dir", "", "directory served under /files/ (none if empty)")
	rate := fs.Int("rate", 0, "send files at most this many bytes per second (0: unthrottled)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *rate < 0 {
		return usageError{fmt.Errorf("-rate %d: want bytes per second ≥ 0", *rate)}
	}
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") } // the client sees a failed write
	mux.HandleFunc("GET /healthz", ok)
	mux.HandleFunc("GET /readyz", ok)
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, version.String("e2e-agent")+"\n") // the client sees a failed write
	})
	mux.HandleFunc("GET /whoami", whoami)
	if *dir != "" {
		files := http.StripPrefix("/files/", http.FileServer(http.Dir(*dir)))
		mux.Handle("GET /files/", logged(throttled(files, *rate)))
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("e2e-agent: %s serving on %s (files: %q, rate %d B/s)\n", version.String("e2e-agent"), ln.Addr(), *dir, *rate)
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdown); err != nil {
			fmt.Fprintf(os.Stderr, "e2e-agent: shutdown: %v\n", err)
		}
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Println("e2e-agent: stopped")
	return nil
}

// logged logs each request it passes to h.
func logged(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("e2e-agent: %s %s from %s\n", r.Method, r.URL.Path, r.RemoteAddr)
		h.ServeHTTP(w, r)
	})
}

// identity is what /whoami reports: who and where the process is.
type identity struct {
	UID       int      `json:"uid"`
	GID       int      `json:"gid"`
	Groups    []int    `json:"groups"`
	Hostname  string   `json:"hostname"`
	Addresses []string `json:"addresses"`
	Version   string   `json:"version"`
}

func whoami(w http.ResponseWriter, _ *http.Request) {
	id := identity{UID: os.Getuid(), GID: os.Getgid(), Version: version.String("e2e-agent")}
	id.Groups, _ = os.Getgroups()
	id.Hostname, _ = os.Hostname()
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			id.Addresses = append(id.Addresses, a.String())
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(id) // id always encodes; the client sees a failed write
}

// Where a pod finds its service-account credentials.
const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// get fetches one URL and prints (or saves) the body; a status other than 2xx is an error.
func get(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	inCluster := fs.Bool("in-cluster", false, "authenticate to the API server with the pod's service account")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	out := fs.String("o", "", "write the body to this file instead of stdout")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 1 {
		return usageError{fmt.Errorf("get wants exactly one URL, got %d arguments; %s", fs.NArg(), usage)}
	}
	url := fs.Arg(0)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	client := &http.Client{}
	var token string
	if *inCluster {
		var err error
		if client, token, url, err = inClusterClient(url); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: status %s, want 2xx: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return writeBody(*out, resp.Body)
}

// inClusterClient returns a client trusting the cluster CA, the pod's token,
// and url resolved against the API server's service address.
func inClusterClient(url string) (*http.Client, string, string, error) {
	token, err := os.ReadFile(saDir + "/token")
	if err != nil {
		return nil, "", "", fmt.Errorf("in-cluster: service-account token: %w", err)
	}
	ca, err := os.ReadFile(saDir + "/ca.crt")
	if err != nil {
		return nil, "", "", fmt.Errorf("in-cluster: cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, "", "", fmt.Errorf("in-cluster: %s/ca.crt holds no PEM certificate", saDir)
	}
	if strings.HasPrefix(url, "/") {
		host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			return nil, "", "", errors.New("in-cluster: KUBERNETES_SERVICE_HOST or KUBERNETES_SERVICE_PORT is not set")
		}
		url = "https://" + net.JoinHostPort(host, port) + url
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return client, strings.TrimSpace(string(token)), url, nil
}

// writeBody copies body to the file out (atomically) or to stdout if out is "".
func writeBody(out string, body io.Reader) error {
	if out == "" {
		_, err := io.Copy(os.Stdout, body)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".e2e-agent-get-*")
	if err != nil {
		return err
	}
	if _, err := io.Copy(tmp, body); err != nil {
		_ = tmp.Close()           // the copy's error is the one to report
		_ = os.Remove(tmp.Name()) // best effort: a hidden temporary file
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		_ = os.Remove(tmp.Name()) // best effort: a hidden temporary file
		return err
	}
	return os.Rename(tmp.Name(), out)
}
