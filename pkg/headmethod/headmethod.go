// Package headmethod answers HEAD requests the way HTTP says to: like GET,
// without the body (RFC 9110 §9.3.2). Echo routes by method and registers
// no HEAD routes of its own, so without it `curl -I` and health probes
// that use HEAD get 405 Method Not Allowed.
//
//	srv := &http.Server{Handler: headmethod.Handler(e)} // e := echo.New()
package headmethod

import (
	"context"
	"net/http"
)

// Handler serves a HEAD request with h as the same request with method
// GET: status and headers as for GET. The body h writes is dropped by
// net/http, whose own request is still HEAD; so Handler must wrap h where
// the server calls it (no ResponseWriter in between that would send a
// body). Other methods go to h unchanged.
func Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodHead {
			h.ServeHTTP(w, r)
			return
		}
		get := r.Clone(context.WithValue(r.Context(), servedAsGet{}, true))
		get.Method = http.MethodGet
		h.ServeHTTP(w, get)
	})
}

// servedAsGet marks, in a request's context, a HEAD request that Handler
// passes on as GET.
type servedAsGet struct{}

// Method returns the method the client sent: HEAD for a request Handler
// passes on as GET, r.Method otherwise. Spans, logs and metrics use it, so
// that a HEAD is not recorded as a GET.
func Method(r *http.Request) string {
	if asGet, _ := r.Context().Value(servedAsGet{}).(bool); asGet {
		return http.MethodHead
	}
	return r.Method
}
