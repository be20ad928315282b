// Package podreport publishes a process's progress as an annotation on its own pod, so that a
// controller watching the pod can show it (the annotation and its value are api/report's
// ProgressAnnotation and Progress). It speaks plain HTTPS to the Kubernetes API with the pod's
// service-account token (no client-go): one JSON merge patch of one annotation, sent at most
// once per interval from a background goroutine, so reporting never slows the caller.
//
// The pod's service account needs "patch" on "pods" in its namespace.
package podreport

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/xdna-whisper/xdna-whisper/api/report"
)

// serviceAccountDir is where Kubernetes mounts a pod's service-account credentials.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// Reporter patches the progress annotation of one pod.
type Reporter struct {
	url      string
	token    string
	client   *http.Client
	interval time.Duration

	mu      sync.Mutex
	latest  *report.Progress // not yet sent
	lastErr error
	wake    chan struct{}
	done    chan struct{}
	stopped chan struct{}
}

// InCluster returns a Reporter for pod in the namespace and API server of the running pod, using
// its mounted service-account token and CA.
func InCluster(pod string) (*Reporter, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, fmt.Errorf("progress reporting to pod %s: KUBERNETES_SERVICE_HOST/PORT not set: not running in a Kubernetes pod", pod)
	}
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(serviceAccountDir, name))
		if err != nil {
			return nil, fmt.Errorf("progress reporting to pod %s: service account %s: %w (is automountServiceAccountToken off?)", pod, name, err)
		}
		return b, nil
	}
	token, err := read("token")
	if err != nil {
		return nil, err
	}
	ns, err := read("namespace")
	if err != nil {
		return nil, err
	}
	ca, err := read("ca.crt")
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("progress reporting to pod %s: %s/ca.crt holds no PEM certificate", pod, serviceAccountDir)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	return New("https://"+net.JoinHostPort(host, port), strings.TrimSpace(string(ns)), pod, strings.TrimSpace(string(token)), client, 2*time.Second)
}

// New returns a Reporter patching namespace/pod on the API server at apiURL, sending at most one
// patch per interval. Close it to send the last report.
func New(apiURL, namespace, pod, token string, client *http.Client, interval time.Duration) (*Reporter, error) {
	if namespace == "" || pod == "" {
		return nil, fmt.Errorf("progress reporting: namespace %q and pod %q: want both set", namespace, pod)
	}
	u, err := url.Parse(apiURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("progress reporting: API server URL %q: want https://HOST[:PORT]", apiURL)
	}
	r := &Reporter{
		url:      strings.TrimSuffix(apiURL, "/") + "/api/v1/namespaces/" + url.PathEscape(namespace) + "/pods/" + url.PathEscape(pod),
		token:    token,
		client:   client,
		interval: interval,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	go r.loop()
	return r, nil
}

// Report records p as the latest progress; it never blocks on the network.
func (r *Reporter) Report(p report.Progress) {
	r.mu.Lock()
	r.latest = &p
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Close sends the last report (if any is pending) and stops. It returns the last send error.
func (r *Reporter) Close() error {
	close(r.done)
	<-r.stopped
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

// loop sends the latest pending report, then waits out the interval before the next one.
func (r *Reporter) loop() {
	defer close(r.stopped)
	for {
		select {
		case <-r.wake:
		case <-r.done:
			r.sendPending()
			return
		}
		r.sendPending()
		select {
		case <-time.After(r.interval):
		case <-r.done:
			r.sendPending()
			return
		}
	}
}

func (r *Reporter) sendPending() {
	r.mu.Lock()
	p := r.latest
	r.latest = nil
	r.mu.Unlock()
	if p == nil {
		return
	}
	err := r.send(*p)
	r.mu.Lock()
	r.lastErr = err
	r.mu.Unlock()
}

// send patches the annotation: a JSON merge patch touching nothing else.
func (r *Reporter) send(p report.Progress) error {
	body, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{report.ProgressAnnotation: p.Marshal()}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, r.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("progress patch %s: %w", r.url, err)
	}
	req.Header.Set("Content-Type", "application/merge-patch+json")
	req.Header.Set("Accept", "application/json")
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("progress patch %s: %w", r.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("progress patch %s: %s: %s", r.url, resp.Status, bytes.TrimSpace(msg))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}
