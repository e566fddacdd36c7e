// Package crossorigin refuses state-changing requests that a browser sends
// from another origin. Any web page can make a browser POST to
// http://localhost:8080/orders or to an admin API's /faults with a
// "simple" request (a text/plain or form body needs no CORS preflight),
// and the services read JSON whatever the Content-Type, so that curl -d
// works. net/http's CrossOriginProtection tells such requests apart by the
// Sec-Fetch-Site and Origin headers browsers add; requests without them
// (curl, the console's server, the services' tests) go through.
//
//	srv := &http.Server{Handler: crossorigin.Handler(h)}
package crossorigin

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// ProblemType is the RFC 9457 problem type of a refused request.
const ProblemType = "urn:orderflow:problem:cross-origin-request"

// Handler serves h, except a POST, PUT, PATCH or DELETE a browser sends
// from another origin, which gets 403 with a problem+json body. GET, HEAD
// and OPTIONS always go to h: they must change nothing.
func Handler(h http.Handler) http.Handler {
	return HandlerDeny(h, WriteProblem)
}

// HandlerDeny is Handler with deny answering the requests it refuses
// (nil: WriteProblem), for a server that writes its errors its own way.
func HandlerDeny(h http.Handler, deny Deny) http.Handler {
	if deny == nil {
		deny = WriteProblem
	}
	p := http.NewCrossOriginProtection()
	p.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		deny(w, r, &Refusal{
			Status: http.StatusForbidden, Type: ProblemType, Title: "Cross-origin request refused",
			Detail: "a browser sent this " + r.Method + " from another origin; the API takes requests that change something only from its own origin or from clients that are not browsers",
		})
	}))
	return p.Handler(h)
}

// ReadsOnlyFromOwnOrigin serves h, except a request of any method that a
// browser sends from another origin (Sec-Fetch-Site cross-site or
// same-site; or, from a browser without Sec-Fetch-Site, an Origin header
// naming another host than Host), which gets 403 with a problem+json
// body. For GET routes whose cost is their effect, though they change no
// state: a CPU profile or an execution trace that runs for as long as the
// request asks. Handler lets every GET through, so any page could have its
// visitor's browser start them (an <img> pointing at the route) over and
// over; the page cannot read the answer, but the service pays for it.
// Requests without those headers (curl, go tool pprof) go through.
func ReadsOnlyFromOwnOrigin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fromOtherOrigin(r) {
			WriteProblem(w, r, &Refusal{
				Status: http.StatusForbidden, Type: ProblemType, Title: "Cross-origin request refused",
				Detail: "a browser sent this " + r.Method + " from another origin; this route answers only its own origin and clients that are not browsers",
			})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// fromOtherOrigin reports whether a browser sent r from another origin.
func fromOtherOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none": // "none": typed in the address bar, a bookmark
		return false
	case "":
	default: // cross-site, same-site
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	return err != nil || !strings.EqualFold(u.Host, r.Host)
}

// Refusal is why Handler or Host refused a request: the status and the
// RFC 9457 problem (type, title, detail) of the answer. It is an error,
// so that a Deny can hand it to the server's own error handling.
type Refusal struct {
	Status int
	Type   string // ProblemType or HostProblemType
	Title  string
	Detail string
}

func (e *Refusal) Error() string { return e.Detail }

// Deny answers a request that Handler or Host refused, for refusal. It
// must not serve the request as the handler they guard would.
type Deny func(w http.ResponseWriter, r *http.Request, refusal *Refusal)

// WriteProblem is the Deny of Handler and Host: it answers with refusal as
// an application/problem+json document of type, title, status and detail.
func WriteProblem(w http.ResponseWriter, _ *http.Request, refusal *Refusal) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(refusal.Status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": refusal.Type, "title": refusal.Title, "status": refusal.Status, "detail": refusal.Detail})
}

// HostProblemType is the RFC 9457 problem type of a request refused by
// Host.
const HostProblemType = "urn:orderflow:problem:misdirected-request"

// Host serves h, except a request whose Host header names anything but
// an IP address, localhost (or a name under .localhost), the machine's
// host name (os.Hostname) or one of names (such as "order", the name the
// console and the other containers reach a service by in Docker Compose):
// that gets 421 Misdirected Request with a problem+json body.
//
// A page of another site whose name an attacker rebinds to the server's
// address (DNS rebinding) reaches the server with its own name in Host,
// and the browser then treats its requests as same-origin, which Handler
// lets through; a name cannot be rebound to an IP literal, nor, in
// browsers, localhost, and an attacker's page does not carry the names the
// operator chose. The check holds wherever the server listens: a server
// on 0.0.0.0 inside a container whose port is published on the host's
// 127.0.0.1 is as reachable from the host's browser as one on loopback.
// Names are compared without case, port or a final dot; an empty Host
// (HTTP/1.0) is taken.
func Host(names []string, h http.Handler) http.Handler {
	return HostDeny(names, h, WriteProblem)
}

// HostDeny is Host with deny answering the requests it refuses (nil:
// WriteProblem), for a server that writes its errors its own way.
func HostDeny(names []string, h http.Handler, deny Deny) http.Handler {
	if deny == nil {
		deny = WriteProblem
	}
	allowed := hostSet(names)
	if name, err := os.Hostname(); err == nil && name != "" {
		allowed[canonical(name)] = struct{}{}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowed.Contains(r.Host) && !localHost(canonical(hostName(r.Host))) {
			deny(w, r, &Refusal{
				Status: http.StatusMisdirectedRequest, Type: HostProblemType, Title: "Misdirected request",
				Detail: "this server answers to an IP address, localhost, its host name or the names it is given (--allowed-hosts), not to " + r.Host,
			})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// ParseHosts reads a comma-separated list of host names (the value of
// --allowed-hosts) for Host: each a name or an IP address, without port or
// scheme; blanks around them and empty elements are dropped. A name with
// a port, a scheme or a path is an error naming it: it would never match
// a Host header.
func ParseHosts(list string) ([]string, error) {
	var out []string
	for _, h := range strings.Split(list, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if err := CheckHost(h); err != nil {
			return nil, err
		}
		out = append(out, canonical(h))
	}
	return out, nil
}

// CheckHost refuses a name for Host that is empty or has a port, a
// scheme, a path or blanks: it would never match a Host header.
func CheckHost(name string) error {
	if name == "" || net.ParseIP(strings.Trim(name, "[]")) == nil && strings.ContainsAny(name, ":/@?#[] \t") {
		return fmt.Errorf("host %q: want a host name or IP address, without port or scheme", name)
	}
	return nil
}

// HostSet is a set of host names, compared as Host compares them: without
// case, port, the brackets of an IPv6 address or a final dot.
type HostSet map[string]struct{}

// NewHostSet is the set of names, each of which must pass CheckHost.
func NewHostSet(names []string) (HostSet, error) {
	for _, n := range names {
		if err := CheckHost(n); err != nil {
			return nil, err
		}
	}
	return hostSet(names), nil
}

func hostSet(names []string) HostSet {
	s := make(HostSet, len(names))
	for _, n := range names {
		s[canonical(n)] = struct{}{}
	}
	return s
}

// Contains reports whether hostport, the value of a Host header (host or
// host:port), names a host of s.
func (s HostSet) Contains(hostport string) bool {
	_, ok := s[canonical(hostName(hostport))]
	return ok
}

// canonical is a host name as Host compares it: lower case, without the
// brackets of an IPv6 address or a final dot.
func canonical(host string) string {
	return strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
}

// hostName is the host of a Host header (host or host:port), without the
// port.
func hostName(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// localHost reports whether host (canonical) is an IP address, localhost
// or a name under .localhost, or empty (HTTP/1.0).
func localHost(host string) bool {
	return host == "" || host == "localhost" || strings.HasSuffix(host, ".localhost") || net.ParseIP(host) != nil
}
