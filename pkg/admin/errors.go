package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/headmethod"
	"github.com/orderflow/orderflow/pkg/idempotency"
	"github.com/orderflow/orderflow/queue/backend"
)

// Errors a route handler (the server's or a service's own) returns, wrapped
// with context: fmt.Errorf("%w: payment %s", admin.ErrNotFound, id), or,
// when one input is at fault, BadField, NotFound and IdempotencyKeyReused
// (idempotency.ErrKeyReused). StatusOf turns them
// into HTTP statuses; a problem's detail leaves out their text, which its
// title says ("payment p-1", not "not found: payment p-1").
var (
	ErrBadRequest  = errors.New("bad request")
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("conflict")
	ErrUnavailable = errors.New("unavailable")
)

// ProblemContentType is the media type of RFC 9457 problem details.
const ProblemContentType = "application/problem+json"

// Problem is an RFC 9457 problem details object. A handler may return one
// as an error to choose every field itself.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Field names the input at fault (a path parameter, query parameter
	// or JSON field), when there is one.
	Field string `json:"field,omitempty"`
}

func (p *Problem) Error() string {
	if p.Detail != "" {
		return p.Detail
	}
	return p.Title
}

// FieldError marks an error as caused by one input field; the problem
// response names it.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// BadField returns a FieldError for field wrapping ErrBadRequest.
func BadField(field, detail string) error {
	return &FieldError{Field: field, Err: badRequest(detail)}
}

// NotFound returns a FieldError for field wrapping ErrNotFound: the thing
// field names does not exist (a 404).
func NotFound(field, detail string) error {
	return &FieldError{Field: field, Err: &wrapped{msg: detail, err: ErrNotFound}}
}

// IdempotencyKeyReused returns the error of a request whose
// Idempotency-Key was sent before with another request: a 422 of problem
// type idempotency.ProblemTypeKeyReused naming the header, detail saying
// what the key was used for.
func IdempotencyKeyReused(detail string) error {
	return &FieldError{Field: HeaderIdempotencyKey, Err: &wrapped{msg: detail, err: idempotency.ErrKeyReused}}
}

// badRequest returns an error wrapping ErrBadRequest whose text is detail
// alone: the problem's title already says "Bad Request".
func badRequest(detail string) error {
	return &wrapped{msg: detail, err: ErrBadRequest}
}

type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }

// StatusOf is the one place an error becomes an HTTP status.
func StatusOf(err error) int {
	var p *Problem
	var he *echo.HTTPError
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &p):
		return p.Status
	case errors.As(err, &he):
		return he.Code
	case errors.Is(err, ErrNotFound), errors.Is(err, backend.ErrNotFound), errors.Is(err, faults.ErrUnknownFlag):
		return http.StatusNotFound
	case errors.Is(err, ErrBadRequest), errors.Is(err, faults.ErrInvalidValue):
		return http.StatusBadRequest
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, idempotency.ErrKeyReused):
		return http.StatusUnprocessableEntity
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// problemFor builds the response for err. Details of 5xx errors other than
// explicit problems are not shown to the client (they are logged).
func problemFor(err error, instance string) Problem {
	var p *Problem
	if errors.As(err, &p) {
		out := *p
		if out.Type == "" {
			out.Type = "about:blank"
		}
		if out.Title == "" {
			out.Title = http.StatusText(out.Status)
		}
		if out.Instance == "" {
			out.Instance = instance
		}
		return out
	}
	status := StatusOf(err)
	out := Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Instance: instance}
	var he *echo.HTTPError
	switch {
	case errors.As(err, &he):
		if msg, ok := he.Message.(string); ok && msg != out.Title {
			out.Detail = msg
		}
	case status == http.StatusServiceUnavailable || status < 500:
		out.Detail = detail(err)
	default:
		out.Detail = "internal error; see the service log"
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		out.Field = fe.Field
	}
	if errors.Is(err, idempotency.ErrKeyReused) {
		out.Type, out.Title = idempotency.ProblemTypeKeyReused, "Idempotency key reused"
	}
	return out
}

// sentinels are the errors of this package a handler wraps: fmt.Errorf
// puts their text first ("not found: payment p-1").
var sentinels = []error{ErrBadRequest, ErrNotFound, ErrConflict, ErrUnavailable, idempotency.ErrKeyReused}

// detail is err's text for a client, without the sentinel text it starts
// with, which the problem's title says. Only a leading sentinel is cut, by
// the convention above: the errors of BadField, NotFound and
// IdempotencyKeyReused hold no sentinel text but the client's own input (a
// SKU, a flag's value), where a search for "not found" could cut a
// client's text in two. (The order API's clientText searches instead:
// there the layers put their context before the sentinel.)
func detail(err error) string {
	msg := err.Error()
	for _, s := range sentinels {
		if rest, ok := strings.CutPrefix(msg, s.Error()+": "); ok && errors.Is(err, s) {
			return rest
		}
	}
	return msg
}

// errorHandler is the admin server's echo HTTPErrorHandler: problem+json
// responses.
func errorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		p := problemFor(err, c.Request().URL.Path)
		if p.Status >= 500 {
			logger.ErrorContext(c.Request().Context(), "admin request failed",
				slog.String("method", headmethod.Method(c.Request())), slog.String("path", c.Request().URL.Path),
				slog.Int("status", p.Status), slog.Any("error", err))
		}
		writeProblem(c, p)
	}
}

// writeProblem answers with p as problem+json (its headers only to HEAD).
func writeProblem(c echo.Context, p Problem) {
	c.Response().Header().Set(echo.HeaderContentType, ProblemContentType)
	c.Response().WriteHeader(p.Status)
	if c.Request().Method == http.MethodHead {
		return
	}
	_ = json.NewEncoder(c.Response()).Encode(p)
}

// PathParam returns the path parameter name, percent-decoded. Echo routes
// on the raw path when a request spells a character with an escape (a SKU
// "A/B" as A%2FB, or %53 for S) and then leaves the parameter as spelt; it
// decodes nothing itself, and the path is decoded already when there is no
// raw path. A malformed escape is a 400 naming the parameter.
func PathParam(c echo.Context, name string) (string, error) {
	v := c.Param(name)
	if c.Request().URL.RawPath == "" {
		return v, nil
	}
	d, err := url.PathUnescape(v)
	if err != nil {
		return "", BadField(name, fmt.Sprintf("is not escaped properly in the path: %v", err))
	}
	return d, nil
}

// HeaderIdempotencyKey is the request header that makes a POST of the admin
// API (a restock) happen once however often it is sent; the answer to a
// retry carries HeaderIdempotentReplayed: true.
const (
	HeaderIdempotencyKey     = idempotency.Header
	HeaderIdempotentReplayed = idempotency.HeaderReplayed
)

// IdempotencyKey returns the request's Idempotency-Key, "" when it sent
// none. A key sent empty, more than once, longer than
// idempotency.MaxKeyLength bytes or with other than printable ASCII
// characters is a 400 (a FieldError), not read as no key: its sender means
// its retries to happen once.
func IdempotencyKey(r *http.Request) (string, error) {
	key, err := idempotency.KeyFrom(r.Header)
	var bad *idempotency.KeyError
	if errors.As(err, &bad) {
		return "", BadField(HeaderIdempotencyKey, bad.Problem)
	}
	return key, err
}
