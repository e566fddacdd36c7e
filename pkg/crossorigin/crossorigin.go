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
	"net/http"
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
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(http.StatusForbidden)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type":   ProblemType,
		"title":  "Cross-origin request refused",
		"status": http.StatusForbidden,
		"detail": "a browser sent this " + r.Method + " from another origin; the API takes requests that change something only from its own origin or from clients that are not browsers",
	})
}
