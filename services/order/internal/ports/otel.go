package ports

import (
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/pkg/headmethod"
	"github.com/orderflow/orderflow/services/order/internal/app"
)

// instrumentationName is the scope of the HTTP server spans.
const instrumentationName = "github.com/orderflow/orderflow/services/order/internal/ports"

// serverSpans is echo middleware that runs each request in a SERVER span
// named "<method> <route>" (semconv HTTP server conventions), continuing a
// W3C traceparent sent by the client (its Baggage dropped), or starting a
// new trace: then the
// span of POST /orders is the root of the order's trace, and the messages
// the request stores in the outbox carry it as their parent. It must run
// after routing (echo's Use), so the route template is known.
//
// The probes, the API document and requests no route matches (untraced)
// get no span: a health check every few seconds would bury the orders'
// traces in Jaeger.
// A span of a route about one order carries its id (app.AttributeOrderID),
// percent-decoded as the handler reads it (orderID: /orders/o%2D1 is
// o-1), so that Jaeger's tag search finds the requests that read or
// changed it (each its own trace, unless the client sent a traceparent)
// beside the trace that POST /orders began.
//
// The handler's error is rendered inside the span (echo's c.Error), so the
// span sees the final status; it then returns nil.
func serverSpans(tp trace.TracerProvider, prop propagation.TextMapPropagator) echo.MiddlewareFunc {
	tracer := tp.Tracer(instrumentationName)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			route := c.Path()
			if untraced(route) {
				return next(c)
			}
			method := headmethod.Method(req) // HEAD, not the GET it is served as
			name := method
			if route != "" {
				name += " " + route
			}
			// A client's W3C Baggage is not taken: the propagator would
			// copy it into every message of the order, and so into every
			// service's database and dead letters (up to 8 KB each), and
			// the services read none.
			ctx := baggage.ContextWithoutBaggage(prop.Extract(req.Context(), propagation.HeaderCarrier(req.Header)))
			ctx, span := tracer.Start(ctx, name,
				trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(
					semconv.HTTPRequestMethodKey.String(method),
					semconv.HTTPRoute(route),
					semconv.URLPath(req.URL.Path),
					semconv.URLScheme(scheme(req)),
					semconv.ClientAddress(c.RealIP()),
					semconv.UserAgentOriginal(req.UserAgent()),
				),
				trace.WithAttributes(serverAddress(req.Host)...))
			defer span.End()
			if id, err := orderID(c); err == nil && id != "" {
				span.SetAttributes(app.AttributeOrderID.String(id))
			}
			c.SetRequest(req.WithContext(ctx))
			// The request's trace in a response header (W3C Trace
			// Context Level 2's traceresponse), for clients that do not
			// read the body, a HEAD, a proxy's log.
			c.Response().Header().Set(HeaderTraceResponse, traceResponse(span.SpanContext()))

			if err := next(c); err != nil {
				c.Error(err)
			}
			status := c.Response().Status
			span.SetAttributes(semconv.HTTPResponseStatusCode(status))
			if id, ok := placedOrderID(c); ok {
				span.SetAttributes(app.AttributeOrderID.String(id))
			}
			if status >= http.StatusInternalServerError {
				// As the HTTP conventions ask of a server span: the
				// status code as the error's type.
				span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(status)))
				span.SetStatus(codes.Error, http.StatusText(status))
			}
			return nil
		}
	}
}

// HeaderTraceResponse is the response header that names the request's
// span: version, trace id, span id and flags, as a traceparent has them.
const HeaderTraceResponse = "Traceresponse"

// traceResponse is sc as a traceresponse header's value.
func traceResponse(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// untraced reports whether route is served without a span: the probes,
// the API document, and a request no route matches ("", a scanner
// probing /wp-login.php), which is about no order and would start a
// trace of its own each time.
func untraced(route string) bool {
	switch route {
	case "", "/healthz", "/readyz", "/openapi.json", "/openapi.yaml":
		return true
	}
	return false
}

// placedOrderID is the id of the order a POST /orders answered with (201,
// or 200 for a replayed Idempotency-Key): the last element of its
// Location.
func placedOrderID(c echo.Context) (string, bool) {
	if c.Request().Method != http.MethodPost || c.Path() != "/orders" {
		return "", false
	}
	if s := c.Response().Status; s != http.StatusCreated && s != http.StatusOK {
		return "", false
	}
	id, ok := strings.CutPrefix(c.Response().Header().Get(echo.HeaderLocation), "/orders/")
	return id, ok && id != "" && !strings.Contains(id, "/")
}

// serverAddress is the server.address and server.port attributes of a
// Host header: the name without the port, and the port when one is given.
func serverAddress(hostport string) []attribute.KeyValue {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return []attribute.KeyValue{semconv.ServerAddress(strings.Trim(hostport, "[]"))}
	}
	attrs := []attribute.KeyValue{semconv.ServerAddress(host)}
	if n, err := strconv.Atoi(port); err == nil {
		attrs = append(attrs, semconv.ServerPort(n))
	}
	return attrs
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}
