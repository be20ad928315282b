package main

import (
	"flag"

	"github.com/xdna-whisper/xdna-whisper/encoder/client"
)

// remoteFlags are how loadtest and `encode --server` reach a locked server: TLS (a CA
// to trust, the name to verify) and a bearer token read from a file, never from the
// command line, where other users of the machine could read it.
type remoteFlags struct {
	tls        *bool
	caFile     *string
	serverName *string
	tokenFile  *string
}

func addRemoteFlags(fs *flag.FlagSet) *remoteFlags {
	return &remoteFlags{
		tls:        fs.Bool("tls", false, "gRPC over TLS (HTTP follows the URL: https://)"),
		caFile:     fs.String("ca-file", "", "PEM CA bundle to verify the server's certificate with (default: the system's roots; implies --tls)"),
		serverName: fs.String("server-name", "", "name to verify in the server's certificate (default: the host dialled)"),
		tokenFile:  fs.String("token-file", "", "file whose first non-comment line is the bearer token to send"),
	}
}

// credentials reads the token file, if any.
func (r *remoteFlags) credentials() (client.Credentials, error) {
	c := client.Credentials{TLS: *r.tls, CAFile: *r.caFile, ServerName: *r.serverName}
	if *r.tokenFile != "" {
		t, err := client.LoadToken(*r.tokenFile)
		if err != nil {
			return c, err
		}
		c.Token = t
	}
	return c, nil
}

// http is a client of the HTTP API at base.
func (r *remoteFlags) http(base string) (*client.HTTP, error) {
	c, err := r.credentials()
	if err != nil {
		return nil, err
	}
	hc, err := c.HTTPClient()
	if err != nil {
		return nil, err
	}
	return &client.HTTP{Base: base, Client: hc}, nil
}

// dial connects to the gRPC API at addr.
func (r *remoteFlags) dial(addr string) (*client.GRPC, error) {
	c, err := r.credentials()
	if err != nil {
		return nil, err
	}
	opts, err := c.DialOptions()
	if err != nil {
		return nil, err
	}
	return client.Dial(addr, opts...)
}
