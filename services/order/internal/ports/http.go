// Package ports adapts the outside world to the order service's
// application layer: the HTTP API (echo) and the handlers of the replies
// that inventory, payment and shipping publish on the shared queue. Ports
// call only the app package.
package ports

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/orderflow/orderflow/pkg/admin"
	"github.com/orderflow/orderflow/pkg/crossorigin"
	"github.com/orderflow/orderflow/pkg/headmethod"
	"github.com/orderflow/orderflow/pkg/idempotency"
	"github.com/orderflow/orderflow/pkg/jsonbody"
	"github.com/orderflow/orderflow/pkg/readiness"
	"github.com/orderflow/orderflow/services/order/internal/app"
	"github.com/orderflow/orderflow/services/order/internal/domain"
)

// Header names of the API.
const (
	HeaderIdempotencyKey      = idempotency.Header
	HeaderIdempotentReplayed  = idempotency.HeaderReplayed
	contentTypeProblemJSON    = "application/problem+json"
	defaultBodyLimit          = 64 << 10
	defaultRequestTimeout     = 10 * time.Second
	defaultReadyTimeout       = 2 * time.Second
	problemTypeValidation     = "urn:orderflow:problem:validation-error"
	problemTypeMalformed      = "urn:orderflow:problem:malformed-request"
	problemTypeNotFound       = "urn:orderflow:problem:order-not-found"
	problemTypeNotCancellable = "urn:orderflow:problem:order-not-cancellable"
	problemTypeIdempotency    = idempotency.ProblemTypeKeyReused
	problemTypeConflict       = "urn:orderflow:problem:conflict"
	problemTypeTooLarge       = "urn:orderflow:problem:body-too-large"
	problemTypeOverloaded     = "urn:orderflow:problem:too-many-open-orders"
	problemTypeStorage        = "urn:orderflow:problem:storage-unavailable"
	problemTypeUnsupported    = "urn:orderflow:problem:unsupported-media-type"
)

// HTTPConfig configures NewHTTPHandler. App is required.
type HTTPConfig struct {
	App *app.Application
	// Ready reports whether the service can take traffic (GET /readyz);
	// nil means always ready.
	Ready func(ctx context.Context) error
	// ReadyTimeout bounds GET /readyz: a Ready that has not answered by
	// then (a database on a frozen disk) is reported as not ready.
	// Default 2s, as the admin API's /readyz.
	ReadyTimeout time.Duration
	// Logger receives access and error records. Default: discarded.
	Logger *slog.Logger
	// TracerProvider and Propagator for the server spans. Defaults:
	// no-op, W3C Trace Context.
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
	// BodyLimit caps request bodies, in bytes. Default 64 KiB.
	BodyLimit int64
	// RequestTimeout bounds the work of one request. Default 10s.
	RequestTimeout time.Duration
}

func (c *HTTPConfig) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.TracerProvider == nil {
		c.TracerProvider = tracenoop.NewTracerProvider()
	}
	if c.Propagator == nil {
		c.Propagator = propagation.TraceContext{}
	}
	if c.BodyLimit == 0 {
		c.BodyLimit = defaultBodyLimit
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = defaultRequestTimeout
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = defaultReadyTimeout
	}
}

// Validate reports an unusable config.
func (c HTTPConfig) Validate() error {
	var errs []error
	if c.App == nil {
		errs = append(errs, errors.New("app is nil"))
	}
	if c.BodyLimit < 0 || c.RequestTimeout < 0 || c.ReadyTimeout < 0 {
		errs = append(errs, errors.New("body limit, request timeout and ready timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// NewHTTPServer returns an http.Server for h with the API's timeouts; it
// answers HEAD like GET without the body (headmethod), refuses writes a
// browser sends from another origin (crossorigin.Handler) and, wherever it
// listens, Host names that could be rebound: any but IP addresses,
// localhost, the machine's host name and allowedHosts (crossorigin.Host).
// Its refusals are answered as h answers errors (writeRefusal).
func NewHTTPServer(addr string, allowedHosts []string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           crossorigin.HostDeny(allowedHosts, crossorigin.HandlerDeny(headmethod.Handler(h), writeRefusal), writeRefusal),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

type httpServer struct {
	cfg   HTTPConfig
	app   *app.Application
	ready *readiness.Check // of cfg.Ready; nil without one
}

// NewHTTPHandler returns the order API:
//
//	POST /orders                 place an order (Idempotency-Key honoured)
//	GET  /orders                 list orders (?status=&limit=&cursor=), newest first
//	GET  /orders/counts          how many orders are in each status
//	GET  /orders/{id}            one order
//	GET  /orders/{id}/events     the order's event history
//	POST /orders/{id}/cancel     cancel an order
//	GET  /healthz, GET /readyz   liveness and readiness
//	GET  /openapi.json           the OpenAPI 3.1 document (openapi.json)
//	GET  /openapi.yaml           the same as YAML
//
// Errors are RFC 9457 application/problem+json documents. The GETs of
// /orders, /orders/counts, /orders/{id} and /orders/{id}/events refuse a
// query that does not decode, a parameter they do not take, one given
// twice and one given empty (checkQuery); the POSTs, the probes and the
// document ignore the query.
func NewHTTPHandler(cfg HTTPConfig) (*echo.Echo, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new http handler: %w", err)
	}
	s := &httpServer{cfg: cfg, app: cfg.App}
	if cfg.Ready != nil {
		s.ready = readiness.New(cfg.Ready, cfg.ReadyTimeout)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(
		requestID,
		serverSpans(cfg.TracerProvider, cfg.Propagator),
		middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, LogErrorFunc: s.logPanic}),
		s.timeout,
		allowHead,
	)
	e.POST("/orders", s.placeOrder)
	e.GET("/orders", s.listOrders)
	e.GET("/orders/counts", s.statusCounts)
	e.GET("/orders/:id", s.getOrder)
	e.GET("/orders/:id/events", s.orderEvents)
	e.POST("/orders/:id/cancel", s.cancelOrder)
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	registerOpenAPI(e)
	return e, nil
}

// maxRequestIDLength bounds a client's X-Request-ID: it becomes the
// causation id of the events and messages the request stores.
const maxRequestIDLength = 128

// requestID sets the response's X-Request-ID, which the handlers pass on as
// the causation id. A client's own id is kept only if it is at most
// maxRequestIDLength printable ASCII characters: anything else would be
// stored in every event and message of the request (and echoed back), so
// it is replaced by a fresh id.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !validRequestID(id) {
			id = newRequestID()
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] > 0x7e { // printable ASCII: no control character, nothing beyond ASCII
			return false
		}
	}
	return true
}

// newRequestID returns 32 random hex digits.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

func (s *httpServer) timeout(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RequestTimeout)
		defer cancel()
		c.SetRequest(c.Request().WithContext(ctx))
		return next(c)
	}
}

func (s *httpServer) logPanic(c echo.Context, err error, stack []byte) error {
	s.cfg.Logger.ErrorContext(c.Request().Context(), "panic in http handler", "error", err, "stack", string(stack))
	return err
}

// ---- requests -----------------------------------------------------------------

type lineRequest struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

type addressRequest struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

type placeOrderRequest struct {
	CustomerID      string          `json:"customer_id"`
	Items           []lineRequest   `json:"items"`
	ShippingAddress *addressRequest `json:"shipping_address"`
}

type cancelOrderRequest struct {
	Reason string `json:"reason"`
}

// malformedError is a request that cannot be parsed: 400, with the field
// at fault when known.
type malformedError struct {
	Field  string
	Detail string
}

func (e *malformedError) Error() string {
	if e.Field == "" {
		return "malformed request: " + e.Detail
	}
	return "malformed request: " + e.Field + ": " + e.Detail
}

// tooLargeError is a body over the limit: 413.
type tooLargeError struct{ limit int64 }

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("request body is larger than %d bytes", e.limit)
}

// readBody reads the request body, at most BodyLimit bytes, into v with
// jsonbody.Decode, the reader of every orderflow API: one JSON object of
// v's shape and nothing else, an integer field taking 2.0 or 1e2 (see
// there what it refuses). An empty body is allowed when optional is true.
// Its errors are a *tooLargeError, a *malformedError when the body cannot
// be read, and jsonbody's *jsonbody.Error.
func (s *httpServer) readBody(c echo.Context, v any, optional bool) error {
	req := c.Request()
	if req.ContentLength > s.cfg.BodyLimit {
		return &tooLargeError{limit: s.cfg.BodyLimit}
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, s.cfg.BodyLimit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &tooLargeError{limit: s.cfg.BodyLimit}
	}
	if err != nil {
		return &malformedError{Detail: "cannot read body: " + err.Error()}
	}
	if optional && len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	return jsonbody.Decode(body, v)
}

// ---- handlers -----------------------------------------------------------------

func (s *httpServer) placeOrder(c echo.Context) error {
	var req placeOrderRequest
	if err := checkBodyEncoding(c); err != nil {
		return err
	}
	if err := s.readBody(c, &req, false); err != nil {
		return quantityRangeError(err)
	}
	key, err := idempotency.KeyFrom(c.Request().Header)
	if err != nil {
		return err
	}
	cmd := placeOrderCommand(req, key, c.Response().Header().Get(echo.HeaderXRequestID))
	ctx := c.Request().Context()
	res, err := s.app.Commands.PlaceOrder.Handle(ctx, cmd)
	if err != nil {
		return err
	}
	location := "/orders/" + res.OrderID
	if !res.Replayed {
		// The order is committed: the answer comes from what the command
		// committed, not from a read that could fail (the request's
		// deadline spent on a slow commit, no file descriptor left) and
		// make a client without an Idempotency-Key place it again.
		c.Response().Header().Set(echo.HeaderLocation, location)
		return c.JSON(http.StatusCreated, res.Order)
	}
	// An earlier request placed it; if this read fails, the client's
	// retry with the same key replays again and places nothing.
	v, err := s.app.Queries.GetOrder.Handle(ctx, res.OrderID)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, location)
	c.Response().Header().Set(HeaderIdempotentReplayed, "true")
	return c.JSON(http.StatusOK, v)
}

// orderID is the {id} of the path, percent-decoded: echo routes on the
// raw path when a request spells a character with an escape it need not
// have (%2D for '-'), and leaves the parameter as spelt.
func orderID(c echo.Context) (string, error) {
	id, err := url.PathUnescape(c.Param("id"))
	if err != nil {
		return "", &malformedError{Detail: fmt.Sprintf("order id %q is not a valid path segment", c.Param("id"))}
	}
	return id, nil
}

// checkQuery refuses the request's query parameters other than known, and
// any given twice or empty (admin.CheckQuery), as a malformed request naming
// the parameter: a misspelt ?stauts= must not list every order, nor
// ?status=a&status=b read only the first, nor ?limit= the default.
func checkQuery(c echo.Context, known ...string) error {
	err := admin.CheckQuery(c.QueryString(), known...)
	var fe *admin.FieldError
	if errors.As(err, &fe) {
		return &malformedError{Field: fe.Field, Detail: fe.Err.Error()}
	}
	return err
}

func (s *httpServer) getOrder(c echo.Context) error {
	if err := checkQuery(c); err != nil {
		return err
	}
	id, err := orderID(c)
	if err != nil {
		return err
	}
	v, err := s.app.Queries.GetOrder.Handle(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

type eventsResponse struct {
	OrderID string            `json:"order_id"`
	Events  []app.EventRecord `json:"events"`
}

func (s *httpServer) orderEvents(c echo.Context) error {
	if err := checkQuery(c); err != nil {
		return err
	}
	id, err := orderID(c)
	if err != nil {
		return err
	}
	evs, err := s.app.Queries.OrderEvents.Handle(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, eventsResponse{OrderID: id, Events: evs})
}

func (s *httpServer) listOrders(c echo.Context) error {
	if err := checkQuery(c, "status", "limit", "cursor", "placed_since"); err != nil {
		return err
	}
	f := app.ListFilter{
		Status: domain.Status(upperASCII(c.QueryParam("status"))),
		Cursor: c.QueryParam("cursor"),
	}
	if l := c.QueryParam("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil {
			return &malformedError{Field: "limit", Detail: fmt.Sprintf("must be an integer, got %q", l)}
		}
		f.Limit, f.LimitGiven = n, true // an explicit 0 is out of range, not the default
	}
	if since := c.QueryParam("placed_since"); since != "" {
		t, err := time.Parse(time.RFC3339Nano, since)
		if err != nil {
			return &malformedError{Field: "placed_since", Detail: fmt.Sprintf("must be an RFC 3339 time such as 2026-11-25T21:00:00Z, got %q", since)}
		}
		f.PlacedSince = t
	}
	page, err := s.app.Queries.ListOrders.Handle(c.Request().Context(), f)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page)
}

type countsResponse struct {
	Counts map[domain.Status]int64 `json:"counts"`
	Total  int64                   `json:"total"`
}

func (s *httpServer) statusCounts(c echo.Context) error {
	if err := checkQuery(c); err != nil {
		return err
	}
	counts, err := s.app.Queries.StatusCounts.Handle(c.Request().Context())
	if err != nil {
		return err
	}
	var total int64
	for _, n := range counts {
		total += n
	}
	return c.JSON(http.StatusOK, countsResponse{Counts: counts, Total: total})
}

func (s *httpServer) cancelOrder(c echo.Context) error {
	var req cancelOrderRequest
	if err := checkBodyEncoding(c); err != nil {
		return err
	}
	if err := s.readBody(c, &req, true); err != nil {
		return err
	}
	ctx := c.Request().Context()
	id, err := orderID(c)
	if err != nil {
		return err
	}
	// The answer is the order as the command committed it, not a read
	// after the commit that could fail (the request's deadline spent
	// waiting in the shared transaction) and answer 5xx for an order that
	// is cancelling.
	v, err := s.app.Commands.CancelOrder.Handle(ctx, app.CancelOrder{
		OrderID: id, Reason: req.Reason, RequestID: c.Response().Header().Get(echo.HeaderXRequestID),
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (s *httpServer) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers within ReadyTimeout, probes sharing the check in flight
// (readiness.Check): a check stuck on a frozen disk answers 503.
func (s *httpServer) readyz(c echo.Context) error {
	if s.ready != nil {
		if err := s.ready.Ready(c.Request().Context()); err != nil {
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// ---- errors -------------------------------------------------------------------

// Problem is an RFC 9457 problem details document. Errors lists the fields
// at fault, named as on the wire ("items[0].quantity", "limit",
// "Idempotency-Key").
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Field is the first field at fault, Errors all of them.
	Field   string         `json:"field,omitempty"`
	Errors  []FieldProblem `json:"errors,omitempty"`
	TraceID string         `json:"trace_id,omitempty"`
	// RetryAfter, when positive, is sent as the Retry-After header.
	RetryAfter time.Duration `json:"-"`
}

// FieldProblem is one field at fault.
type FieldProblem struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// overloadRetryAfter is the Retry-After of a refusal for load, and of a
// request that ran out of time: about the time a few hundred orders take
// to end.
const overloadRetryAfter = time.Second

// storageRetryAfter is the Retry-After of a request refused because the
// order database cannot be used: long enough not to hammer a disk that is
// full or failing, short enough for a brief lock or fd shortage.
const storageRetryAfter = 5 * time.Second

// statusClientClosedRequest is nginx's 499: the client closed the
// connection before the answer. net/http has no name for it.
const statusClientClosedRequest = 499

// validationProblem is the 422 of a request whose body or query parameters
// are well-formed but not valid: one entry per field or parameter.
func validationProblem(detail string, fields []domain.FieldError) Problem {
	p := Problem{Type: problemTypeValidation, Title: "Invalid request", Status: http.StatusUnprocessableEntity, Detail: detail}
	for _, f := range fields {
		p.Errors = append(p.Errors, FieldProblem{Field: f.Field, Detail: f.Problem})
	}
	return p
}

// malformedProblem is the 400 of a request that cannot be parsed, naming
// the field at fault when there is one.
func malformedProblem(e *malformedError) Problem {
	p := Problem{Type: problemTypeMalformed, Title: "Malformed request", Status: http.StatusBadRequest, Detail: e.Error()}
	if e.Field != "" {
		p.Errors = []FieldProblem{{Field: e.Field, Detail: e.Detail}}
	}
	return p
}

// problemRequest is what problemFor knows of the request besides its
// error.
type problemRequest struct {
	// route is the method and route as registered ("POST
	// /orders/:id/cancel"): a refusal for now says how to send that
	// request again (resendHint).
	route string
	// orderID is the order the path names, "" if none.
	orderID string
	// keyed is true when the request sent an Idempotency-Key.
	keyed bool
}

// problemFor is the one place where errors become HTTP statuses. Details
// are in the API's words: an error's message from its sentinel on
// (clientText), without the context the layers add for the log.
func problemFor(err error, req problemRequest) Problem {
	var (
		malformed *malformedError
		body      *jsonbody.Error
		tooLarge  *tooLargeError
		encoding  *unsupportedMediaTypeError
		header    *idempotency.KeyError
		invalid   *domain.ValidationError
		query     *app.QueryError
		refused   *crossorigin.Refusal
		httpErr   *echo.HTTPError
	)
	switch {
	case errors.As(err, &malformed):
		return malformedProblem(malformed)
	case errors.As(err, &body):
		// The body reader's refusal: a body that is not the JSON the
		// route takes (400), but for a number beyond its field's range in
		// a well-formed body, a value the API does not take (422).
		if body.OutOfRange != "" {
			return validationProblem("invalid request: "+body.Error(), []domain.FieldError{{Field: body.Field, Problem: body.Detail}})
		}
		return malformedProblem(&malformedError{Field: body.Field, Detail: body.Detail})
	case errors.As(err, &tooLarge):
		return Problem{Type: problemTypeTooLarge, Title: "Request body too large", Status: http.StatusRequestEntityTooLarge, Detail: tooLarge.Error()}
	case errors.As(err, &encoding):
		return Problem{Type: problemTypeUnsupported, Title: "Unsupported media type", Status: http.StatusUnsupportedMediaType, Detail: encoding.Error()}
	case errors.As(err, &header):
		return validationProblem("request header "+header.Error(), []domain.FieldError{{Field: idempotency.Header, Problem: header.Problem}})
	case errors.As(err, &invalid):
		// The fields of a cancellation are not an order's.
		detail := invalid.Error()
		if req.route == "POST /orders/:id/cancel" {
			detail = "invalid cancellation" + strings.TrimPrefix(detail, domain.ErrInvalidOrder.Error())
		}
		return validationProblem(detail, invalid.Fields)
	case errors.As(err, &query):
		return validationProblem(query.Error(), query.Params)
	case errors.Is(err, app.ErrOrderNotFound):
		detail := clientText(err, app.ErrOrderNotFound)
		if req.orderID != "" {
			detail = app.ErrOrderNotFound.Error() + ": " + req.orderID
		}
		return Problem{Type: problemTypeNotFound, Title: "Order not found", Status: http.StatusNotFound, Detail: detail}
	case errors.Is(err, domain.ErrNotCancellable):
		return Problem{Type: problemTypeNotCancellable, Title: "Order cannot be cancelled", Status: http.StatusConflict, Detail: clientText(err, domain.ErrNotCancellable)}
	case errors.Is(err, idempotency.ErrKeyReused):
		return Problem{
			Type: problemTypeIdempotency, Title: "Idempotency key reused", Status: http.StatusUnprocessableEntity,
			Detail: clientText(err, idempotency.ErrKeyReused), Errors: []FieldProblem{{Field: HeaderIdempotencyKey, Detail: "was used for a different request"}},
		}
	case errors.Is(err, app.ErrTooManyOpenOrders):
		return Problem{
			Type: problemTypeOverloaded, Title: "Too many open orders", Status: http.StatusServiceUnavailable,
			Detail: clientText(err, app.ErrTooManyOpenOrders) + "; " + resendHint(req, false), RetryAfter: overloadRetryAfter,
		}
	case errors.Is(err, app.ErrStorageUnavailable):
		// The detail is fixed: the error names files and statements,
		// which the log has.
		return Problem{
			Type: problemTypeStorage, Title: "Storage unavailable", Status: http.StatusServiceUnavailable,
			Detail:     "the order database cannot be used now (disk full, I/O error, locked or out of file descriptors); " + resendHint(req, true),
			RetryAfter: storageRetryAfter,
		}
	case errors.Is(err, app.ErrConflict):
		return Problem{Type: problemTypeConflict, Title: "Concurrent update", Status: http.StatusConflict, Detail: "the order changed concurrently; retry"}
	case errors.Is(err, context.DeadlineExceeded):
		return Problem{Type: "about:blank", Title: http.StatusText(http.StatusServiceUnavailable), Status: http.StatusServiceUnavailable,
			Detail: "the request took too long; " + resendHint(req, true), RetryAfter: overloadRetryAfter}
	case errors.Is(err, context.Canceled):
		// net/http cancels a request's context when its client goes away:
		// nobody reads the answer, and nothing failed on the server's
		// side, so it is no 5xx (logged as an error, a span in error).
		return Problem{Type: "about:blank", Title: "Client Closed Request", Status: statusClientClosedRequest, Detail: "the client closed the request"}
	case errors.As(err, &refused):
		return Problem{Type: refused.Type, Title: refused.Title, Status: refused.Status, Detail: refused.Detail}
	case errors.As(err, &httpErr):
		p := Problem{Type: "about:blank", Title: http.StatusText(httpErr.Code), Status: httpErr.Code}
		if m, ok := httpErr.Message.(string); ok && m != http.StatusText(httpErr.Code) {
			p.Detail = m
		}
		return p
	}
	return Problem{Type: "about:blank", Title: http.StatusText(http.StatusInternalServerError), Status: http.StatusInternalServerError}
}

// clientText is err's message from sentinel's on ("order not found: o-1"),
// without the context the layers wrapped it in ("get order o-1: "), which
// the log keeps; err's whole message if sentinel's is not in it. (The
// admin API cuts a leading sentinel instead, its errors being made the
// other way round: see admin's detail.)
func clientText(err, sentinel error) string {
	msg := err.Error()
	if i := strings.Index(msg, sentinel.Error()); i >= 0 {
		return msg[i:]
	}
	return msg
}

// resendHint tells the client of req, refused for now, how to send the
// request again: a placement with the Idempotency-Key it sent; one sent
// without a key, if it may have been placed (mayHavePlaced: the refusal
// came after the transaction began), is told to send one with every
// placement, since a retry without it would place a committed order twice;
// a cancellation as it was, a second one changing nothing; a read as it
// was.
func resendHint(req problemRequest, mayHavePlaced bool) string {
	switch req.route {
	case "POST /orders":
		switch {
		case req.keyed:
			return "send the request again later (a POST /orders with the same Idempotency-Key)"
		case mayHavePlaced:
			return "send the request again later (send an Idempotency-Key with every POST /orders: a retry with the same key places the order once)"
		}
	case "POST /orders/:id/cancel":
		return "send the request again later (cancelling an order that is already cancelling changes nothing)"
	}
	return "send the request again later"
}

// writeRefusal is NewHTTPServer's crossorigin.Deny: it answers a request
// refused before it reaches the API's handler as handleError answers the
// handler's errors, the problem from problemFor with the path as instance,
// and with the X-Request-Id every response carries (the client's, if
// requestID would keep it). It reaches no span: it has no trace_id.
func writeRefusal(w http.ResponseWriter, r *http.Request, refusal *crossorigin.Refusal) {
	id := r.Header.Get(echo.HeaderXRequestID)
	if !validRequestID(id) {
		id = newRequestID()
	}
	p := problemFor(refusal, problemRequest{})
	p.Instance = r.URL.Path
	body, err := json.Marshal(p)
	if err != nil {
		body = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500}`)
		p.Status = http.StatusInternalServerError
	}
	w.Header().Set(echo.HeaderXRequestID, id)
	w.Header().Set(echo.HeaderContentType, contentTypeProblemJSON)
	w.WriteHeader(p.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// handleError is echo's error handler: it writes err as problem+json.
func (s *httpServer) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	ctx := c.Request().Context()
	id, _ := orderID(c) // "" where the path names no order, or cannot be read
	p := problemFor(err, problemRequest{
		route: c.Request().Method + " " + c.Path(), orderID: id,
		keyed: len(c.Request().Header.Values(HeaderIdempotencyKey)) > 0,
	})
	p.Instance = c.Request().URL.Path
	if len(p.Errors) > 0 {
		p.Field = p.Errors[0].Field
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		p.TraceID = sc.TraceID().String()
	}
	switch {
	case p.Type == problemTypeOverloaded:
		// Designed back-pressure, counted by orderflow.orders.refused:
		// an overload must not also flood the log with errors.
		s.cfg.Logger.DebugContext(ctx, "http request refused", "method", headmethod.Method(c.Request()), "path", p.Instance, "status", p.Status, "error", err)
	case p.Status >= http.StatusInternalServerError:
		s.cfg.Logger.ErrorContext(ctx, "http request failed", "method", headmethod.Method(c.Request()), "path", p.Instance, "status", p.Status, "error", err)
	default:
		s.cfg.Logger.DebugContext(ctx, "http request refused", "method", headmethod.Method(c.Request()), "path", p.Instance, "status", p.Status, "error", err)
	}
	body, mErr := json.Marshal(p)
	if mErr != nil {
		body = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500}`)
		p.Status = http.StatusInternalServerError
	}
	if p.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(p.RetryAfter/time.Second)))
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(p.Status)
		return
	}
	if err := c.Blob(p.Status, contentTypeProblemJSON, body); err != nil {
		s.cfg.Logger.DebugContext(ctx, "cannot write problem", "error", err)
	}
}
