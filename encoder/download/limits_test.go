package download

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

const planted = "PLANTEDsig0123456789abcdef"

// A signed URL's signature appears in no error and no log line, including
// net/http's own errors that quote the URL.
func TestSignedURLNeverShown(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNotFound)
	}))
	defer srv.Close()
	var logs bytes.Buffer
	o := opts()
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	_, _, err := fetch(t, srv.URL+"/m.onnx?X-Amz-Signature="+planted, o)
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("error = %v, want HTTP 404", err)
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close() // connection refused: a *url.Error quoting the URL
	o.Attempts = 2
	_, _, err2 := fetch(t, "http://u:"+planted+"@"+closed.Listener.Addr().String()+"/m.onnx?sig="+planted, o)
	if err2 == nil {
		t.Fatal("download from a closed port succeeded")
	}
	for what, s := range map[string]string{"error": err.Error(), "dial error": err2.Error(), "logs": logs.String()} {
		if strings.Contains(s, planted) {
			t.Errorf("%s shows the signature: %s", what, s)
		}
	}
	if !strings.Contains(logs.String(), "X-Amz-Signature=REDACTED") {
		t.Errorf("logs lack the redacted URL: %s", logs.String())
	}
}

// Files beyond the cap are refused: up front from Content-Length, and
// mid-stream when the server sends none; nothing is left behind.
func TestSizeCap(t *testing.T) {
	body, _ := payload(10000)
	for _, sendLength := range []bool{true, false} {
		var served atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if sendLength {
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			}
			for i := 0; i < len(body); i += 1000 {
				n, _ := w.Write(body[i : i+1000])
				served.Add(int64(n))
				w.(http.Flusher).Flush()
			}
		}))
		o := opts()
		o.MaxBytes = 4096
		_, dir, err := fetch(t, srv.URL+"/m.onnx", o)
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), "larger than the 4096-byte cap") {
			t.Fatalf("Content-Length sent %v: error = %v, want the size cap", sendLength, err)
		}
		checkOnly(t, dir)
		o.MaxBytes = int64(len(body))
		srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
		if _, _, err := fetch(t, srv.URL+"/m.onnx", o); err != nil {
			t.Errorf("a file of exactly the cap: %v", err)
		}
		srv.Close()
	}
}

func TestPolicyRefusesDeniedAddresses(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("secret internal body"))
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(interface{ String() string }).String()
	port = port[strings.LastIndexByte(port, ':'):]
	for _, tc := range []struct {
		name, url string
		policy    *Policy
		refused   bool
	}{
		{"loopback allowed by default", srv.URL + "/m", nil, false},
		{"denied CIDR", srv.URL + "/m", &Policy{Deny: []string{"127.0.0.0/8"}}, true},
		{"denied IP", srv.URL + "/m", &Policy{Deny: []string{"127.0.0.1"}}, true},
		{"denied name resolves to loopback", "http://localhost" + port + "/m", &Policy{Deny: []string{"127.0.0.0/8", "::1"}}, true},
		{"denied host name", "http://localhost" + port + "/m", &Policy{Deny: []string{"localhost"}}, true},
		{"allow list without it", srv.URL + "/m", &Policy{Allow: []string{"10.0.0.0/8"}}, true},
		{"allow list by name, resolved address unlisted", "http://localhost" + port + "/m", &Policy{Allow: []string{"mirror.example"}}, true},
		{"allow beats deny", srv.URL + "/m", &Policy{Allow: []string{"127.0.0.1/32"}, Deny: []string{"127.0.0.0/8"}}, false},
		{"allowed name is trusted", "http://localhost" + port + "/m", &Policy{Allow: []string{"localhost"}, Deny: []string{"127.0.0.0/8", "::1"}}, false},
		{"metadata address denied by default", "http://169.254.169.254/latest/meta-data/", nil, true},
		{"mapped metadata address denied", "http://[::ffff:169.254.169.254]/", nil, true},
		{"metadata name denied by default", "http://metadata.google.internal/computeMetadata/v1/", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := opts()
			o.Policy = tc.policy
			o.Attempts = 3
			before := hits.Load()
			_, _, err := fetch(t, tc.url, o)
			if tc.refused {
				if !errors.Is(err, ErrRefused) {
					t.Fatalf("error = %v, want ErrRefused", err)
				}
				if hits.Load() != before {
					t.Errorf("the refused target was contacted")
				}
				if strings.Contains(err.Error(), "giving up") {
					t.Errorf("a refusal was retried: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("error = %v", err)
			}
		})
	}
}

// A redirect from an allowed host to a denied one is refused at dial time.
func TestPolicyChecksRedirects(t *testing.T) {
	var hits atomic.Int32
	inner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer inner.Close()
	innerURL := strings.Replace(inner.URL, "127.0.0.1", "localhost", 1)
	outer := httptest.NewServer(http.RedirectHandler(innerURL+"/x", http.StatusFound))
	defer outer.Close()
	o := opts()
	o.Policy = &Policy{Deny: []string{"localhost"}}
	_, _, err := fetch(t, outer.URL+"/m", o)
	if !errors.Is(err, ErrRefused) || hits.Load() != 0 {
		t.Fatalf("error = %v, inner hits %d: want a refusal before any contact", err, hits.Load())
	}
}

func TestPolicyRejectsBadRules(t *testing.T) {
	o := opts()
	o.Policy = &Policy{Deny: []string{"10.0.0.0/33"}}
	_, _, err := fetch(t, "http://127.0.0.1:1/m", o)
	if err == nil || !strings.Contains(err.Error(), `host rule "10.0.0.0/33"`) {
		t.Fatalf("error = %v", err)
	}
}

// Behind a proxy the dialler sees only the proxy: the request URL's host is checked by name too.
func TestPolicyChecksNamesBehindAProxy(t *testing.T) {
	var proxied atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		w.Write([]byte("metadata credentials"))
	}))
	defer proxy.Close()
	pu, _ := url.Parse(proxy.URL)
	o := opts()
	o.Client = &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	for _, target := range []string{"http://169.254.169.254/latest/meta-data/", "http://metadata.google.internal/"} {
		_, _, err := fetch(t, target, o)
		if !errors.Is(err, ErrRefused) {
			t.Errorf("%s through a proxy: %v, want ErrRefused", target, err)
		}
	}
	if proxied.Load() != 0 {
		t.Errorf("the proxy was asked %d times", proxied.Load())
	}
}
