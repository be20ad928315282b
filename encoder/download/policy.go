package download

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
)

// DefaultDeny lists what a source may never reach unless an admin allows it
// explicitly: link-local addresses (where every cloud serves instance
// metadata and credentials) and the other clouds' metadata endpoints.
var DefaultDeny = []string{
	"169.254.0.0/16",     // IPv4 link-local: AWS, GCP, Azure, OpenStack metadata
	"fe80::/10",          // IPv6 link-local
	"fd00:ec2::254/128",  // AWS metadata over IPv6
	"100.100.100.200/32", // Alibaba Cloud metadata
	"168.63.129.16/32",   // Azure WireServer
	"metadata.google.internal",
	"metadata",
}

// Policy decides which hosts a download may connect to. Entries are IP
// addresses, CIDRs, host names ("mirror.svc") or domain suffixes (".corp.example").
//
// A target is allowed when it matches Allow; else refused when it matches
// Deny or DefaultDeny; else refused when Allow is not empty (allow-list mode);
// else allowed. Host names are checked on each request's URL (redirects
// included) and addresses on every IP the name resolves to, at dial time, so a
// name that resolves differently on the second lookup (DNS rebinding) gains
// nothing. A name listed in Allow is trusted whatever it resolves to. Behind
// an HTTP proxy the dialler sees only the proxy, so a target is then checked
// by name (and IP literal) alone.
type Policy struct {
	Allow, Deny []string
}

// rules is a parsed list.
type rules struct {
	prefixes []netip.Prefix
	names    []string
}

func parseRules(entries []string) (rules, error) {
	var r rules
	for _, e := range entries {
		e = strings.ToLower(strings.TrimSpace(e))
		switch {
		case e == "":
		case strings.Contains(e, "/"):
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return r, fmt.Errorf("host rule %q: want an IP, a CIDR or a host name: %w", e, err)
			}
			r.prefixes = append(r.prefixes, p.Masked())
		default:
			if a, err := netip.ParseAddr(strings.Trim(e, "[]")); err == nil {
				r.prefixes = append(r.prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
				continue
			}
			r.names = append(r.names, strings.TrimSuffix(e, "."))
		}
	}
	return r, nil
}

func (r rules) matchName(host string) (string, bool) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, n := range r.names {
		if host == n || (strings.HasPrefix(n, ".") && strings.HasSuffix(host, n)) {
			return n, true
		}
	}
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return r.matchAddr(a)
	}
	return "", false
}

func (r rules) matchAddr(a netip.Addr) (string, bool) {
	a = a.Unmap().WithZone("")
	for _, p := range r.prefixes {
		if p.Contains(a) {
			return p.String(), true
		}
	}
	return "", false
}

// checker is a compiled Policy.
type checker struct {
	allow, deny rules
}

// ErrRefused marks a target the policy refuses.
var ErrRefused = errors.New("refused by the staging host policy")

func (p *Policy) compile() (*checker, error) {
	var c checker
	var err error
	if p == nil {
		p = &Policy{}
	}
	if c.allow, err = parseRules(p.Allow); err != nil {
		return nil, err
	}
	if c.deny, err = parseRules(append(append([]string{}, DefaultDeny...), p.Deny...)); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *checker) allowListMode() bool {
	return len(c.allow.names)+len(c.allow.prefixes) > 0
}

// checkName judges a URL's host before any connection. It returns trusted
// when an Allow entry names the host (its addresses are then not checked).
func (c *checker) checkName(host string) (trusted bool, err error) {
	if _, ok := c.allow.matchName(host); ok {
		return true, nil
	}
	if rule, ok := c.deny.matchName(host); ok {
		return false, fmt.Errorf("host %s: %w (denied by %s)", host, ErrRefused, rule)
	}
	if c.allowListMode() && isIP(host) {
		return false, fmt.Errorf("host %s: %w (not in the allow list)", host, ErrRefused)
	}
	return false, nil
}

// checkAddr judges one resolved address of host.
func (c *checker) checkAddr(host string, a netip.Addr) error {
	if _, ok := c.allow.matchAddr(a); ok {
		return nil
	}
	if rule, ok := c.deny.matchAddr(a); ok {
		return fmt.Errorf("host %s resolves to %s: %w (denied by %s)", host, a.Unmap(), ErrRefused, rule)
	}
	if c.allowListMode() {
		return fmt.Errorf("host %s resolves to %s: %w (not in the allow list)", host, a.Unmap(), ErrRefused)
	}
	return nil
}

func isIP(host string) bool {
	_, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil
}

// guardedClient returns a copy of base whose transport checks every dialled
// host name and address with c (base's transport must be nil or an
// *http.Transport; any other transport is the caller's to guard and is left
// as it is).
func (c *checker) guardedClient(base *http.Client) *http.Client {
	cl := *base
	var t *http.Transport
	switch bt := base.Transport.(type) {
	case nil:
		t = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		t = bt.Clone()
	default:
		return &cl
	}
	t.DialContext = c.dial
	cl.Transport = t
	return &cl
}

// dial connects to address after checking its host name, and checks each
// address just before connect(2) (Dialer.ControlContext sees the address
// actually used, whatever an earlier lookup answered).
func (c *checker) dial(ctx context.Context, network, address string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	trusted, err := c.checkName(host)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{}
	if !trusted {
		d.ControlContext = func(_ context.Context, _, addr string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil {
				return fmt.Errorf("dial %s: %w", addr, err)
			}
			return c.checkAddr(host, ap.Addr())
		}
	}
	return d.DialContext(ctx, network, address)
}
