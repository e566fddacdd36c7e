// Package headmethod answers HEAD requests the way HTTP says to: like GET,
// without the body (RFC 9110 §9.3.2). Echo routes by method and registers
// no HEAD routes of its own, so without it `curl -I` and health probes
// that use HEAD get 405 Method Not Allowed.
//
//	srv := &http.Server{Handler: headmethod.Handler(e)} // e := echo.New()
package headmethod

import "net/http"

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
		get := r.Clone(r.Context())
		get.Method = http.MethodGet
		h.ServeHTTP(w, get)
	})
}
