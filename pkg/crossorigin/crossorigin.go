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
	"net"
	"net/http"
	"strings"
)

// ProblemType is the RFC 9457 problem type of a refused request.
const ProblemType = "urn:orderflow:problem:cross-origin-request"

// Handler serves h, except a POST, PUT, PATCH or DELETE a browser sends
// from another origin, which gets 403 with a problem+json body. GET, HEAD
// and OPTIONS always go to h: they must change nothing.
func Handler(h http.Handler) http.Handler {
	p := http.NewCrossOriginProtection()
	p.SetDenyHandler(http.HandlerFunc(deny))
	return p.Handler(h)
}

func deny(w http.ResponseWriter, r *http.Request) {
	writeProblem(w, http.StatusForbidden, ProblemType, "Cross-origin request refused",
		"a browser sent this "+r.Method+" from another origin; the API takes requests that change something only from its own origin or from clients that are not browsers")
}

// writeProblem answers with an RFC 9457 problem.
func writeProblem(w http.ResponseWriter, status int, typ, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": typ, "title": title, "status": status, "detail": detail})
}

// HostProblemType is the RFC 9457 problem type of a request refused by
// Host.
const HostProblemType = "urn:orderflow:problem:misdirected-request"

// Host serves h, except, on a server that listens on loopback only
// (listen is its address, host:port), a request whose Host header names
// anything but an IP address or localhost: that gets 421 Misdirected
// Request with a problem+json body. A page of another site whose name an
// attacker rebinds to 127.0.0.1 (DNS rebinding) reaches a loopback server
// with its own name in Host, and the browser then treats its requests as
// same-origin, which Handler lets through; a name cannot be rebound to an
// IP literal, nor, in browsers, localhost. A server listening on other
// interfaces (in a container, reached by its service name) is not checked.
func Host(listen string, h http.Handler) http.Handler {
	if !loopback(listen) {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !localHost(r.Host) {
			writeProblem(w, http.StatusMisdirectedRequest, HostProblemType, "Misdirected request",
				"this server listens on loopback and answers to an IP address or localhost, not to "+r.Host)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// loopback reports whether listen (host:port) is on a loopback address
// or localhost only.
func loopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		host = listen
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// HostName is the host of a Host header (host or host:port), lower case,
// without the port or the brackets of an IPv6 address.
func HostName(hostport string) string {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return strings.ToLower(strings.Trim(host, "[]"))
}

// localHost reports whether a Host header (host or host:port) is an IP
// address, localhost or a name under .localhost (a final dot allowed), or
// empty (HTTP/1.0).
func localHost(hostport string) bool {
	host := strings.TrimSuffix(HostName(hostport), ".")
	return host == "" || host == "localhost" || strings.HasSuffix(host, ".localhost") || net.ParseIP(host) != nil
}
