package servertest

import (
	"net"
	"net/http"
	"testing"

	"github.com/xdna-whisper/xdna-whisper/encoder/convert/converttest"
)

// TestStart: once Start returns, the server answers /readyz and /healthz with 200 and accepts
// connections on its gRPC address.
func TestStart(t *testing.T) {
	weights, err := converttest.Demo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	httpURL, grpcAddr := Start(t, weights)
	for _, path := range []string{"/readyz", "/healthz"} {
		resp, err := http.Get(httpURL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s, want 200", path, resp.Status)
		}
	}
	c, err := net.Dial("tcp", grpcAddr)
	if err != nil {
		t.Fatalf("gRPC address %s: %v", grpcAddr, err)
	}
	c.Close()
}
