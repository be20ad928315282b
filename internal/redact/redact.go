// Package redact hides the credentials a URL can carry (userinfo, query
// values, fragment) before the URL is shown or stored anywhere: logs, errors,
// manifests, annotations, status, metric labels. Signed URLs (S3, GCS, Azure
// SAS) carry their signature in the query; the rest of the URL stays readable
// so humans can still tell which source is meant.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces each hidden value.
const Mask = "REDACTED"

// URL returns s with the password (or whole userinfo), every query value and
// the fragment replaced by Mask; plain query keys that have a value stay, so
// "which kind of signed URL" remains visible. Strings that are not absolute URLs (file paths,
// hf://ORG/REPO/PATH) pass through with any "?…" or "#…" part masked.
func URL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.Scheme == "" {
		return cutAfter(s)
	}
	if u.User != nil {
		u.User = url.User(Mask)
	}
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery = maskQuery(u.RawQuery)
	}
	if u.Fragment != "" || u.RawFragment != "" {
		u.Fragment, u.RawFragment = Mask, ""
	}
	return u.String()
}

// maskQuery keeps the keys of a raw query and masks the values.
func maskQuery(raw string) string {
	parts := strings.FieldsFunc(raw, func(r rune) bool { return r == '&' || r == ';' })
	for i, p := range parts {
		k, _, hasValue := strings.Cut(p, "=")
		if k, err := url.QueryUnescape(k); err != nil || !hasValue || !plainKey.MatchString(k) {
			parts[i] = Mask
			continue
		}
		parts[i] = k + "=" + Mask
	}
	if len(parts) == 0 {
		return Mask
	}
	return strings.Join(parts, "&")
}

// plainKey is a query key safe to show (a secret could be passed as a key).
var plainKey = regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,64}$`)

// cutAfter masks everything after the first '?' or '#' of an unparsable string.
func cutAfter(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		return s[:i+1] + Mask
	}
	return s
}

// urlInText finds URLs with a scheme inside free text, up to a quote, space,
// or bracket that ends them in error messages and log lines.
var urlInText = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.\-]*://[^\s"'<>\x60]+`)

// Text applies URL to every URL inside s (error messages, termination
// messages written by another process): the last line of defence where a
// message was built from a source without redaction.
func Text(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlInText.ReplaceAllStringFunc(s, func(m string) string {
		body := strings.TrimRight(m, ".,:;)]}")
		return URL(body) + m[len(body):]
	})
}
