// Package httpdrain tells, when a graceful HTTP shutdown runs out of time,
// what it is still waiting for: clients that stalled while sending their
// request (a body that never comes, which the server's read timeout may
// outlast) or handlers still at work. Cutting off the first is no failure
// of the service; the second is, since those handlers go on while the
// service closes what they use.
//
//	var requests httpdrain.Tracker
//	srv := &http.Server{Handler: requests.Handler(h)}
//	…
//	stalled, err := requests.Shutdown(ctx, srv) // ctx bounds the graceful stop
package httpdrain

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
)

// Tracker counts the handlers running and, of those, the ones blocked
// reading their request's body. The zero value is ready to use.
type Tracker struct {
	running atomic.Int64
	reading atomic.Int64
}

// Handler serves h, counting its calls and their body reads.
func (t *Tracker) Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.running.Add(1)
		defer t.running.Add(-1)
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &countedBody{ReadCloser: r.Body, reading: &t.reading}
		}
		h.ServeHTTP(w, r)
	})
}

// Running is how many handlers are running.
func (t *Tracker) Running() int64 { return t.running.Load() }

// Busy is how many handlers are running other than those waiting for
// their request's body.
func (t *Tracker) Busy() int64 {
	return max(t.running.Load()-t.reading.Load(), 0)
}

// Shutdown shuts srv (whose handler is t.Handler's) down gracefully,
// waiting for requests in progress until ctx ends (its deadline passes or
// it is cancelled). Then it closes the
// connections left: when only clients stalled while sending their
// requests remained, it reports stalled and no error; when handlers were
// still at work, an error saying how many (they go on running).
func (t *Tracker) Shutdown(ctx context.Context, srv *http.Server) (stalled bool, err error) {
	err = srv.Shutdown(ctx)
	// ctx ended, by its deadline or cancelled (a second signal that says
	// hurry): either way the connections left are closed.
	if err == nil || ctx.Err() == nil {
		return false, err
	}
	busy := t.Busy()
	_ = srv.Close()
	if busy > 0 {
		return false, fmt.Errorf("%d requests still running when the shutdown's wait ended: %w", busy, err)
	}
	return true, nil
}

type countedBody struct {
	io.ReadCloser
	reading *atomic.Int64
}

func (b *countedBody) Read(p []byte) (int, error) {
	b.reading.Add(1)
	defer b.reading.Add(-1)
	return b.ReadCloser.Read(p)
}
