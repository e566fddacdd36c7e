package ports

import (
	"net/http"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/pkg/headmethod"
)

// instrumentationName is the scope of the HTTP server spans.
const instrumentationName = "github.com/orderflow/orderflow/services/order/internal/ports"

// serverSpans is echo middleware that runs each request in a SERVER span
// named "<method> <route>" (semconv HTTP server conventions), continuing a
// W3C traceparent sent by the client, or starting a new trace: then the
// span of POST /orders is the root of the order's trace, and the messages
// the request stores in the outbox carry it as their parent. It must run
// after routing (echo's Use), so the route template is known.
//
// The handler's error is rendered inside the span (echo's c.Error), so the
// span sees the final status; it then returns nil.
func serverSpans(tp trace.TracerProvider, prop propagation.TextMapPropagator) echo.MiddlewareFunc {
	tracer := tp.Tracer(instrumentationName)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			route := c.Path()
			method := headmethod.Method(req) // HEAD, not the GET it is served as
			name := method
			if route != "" {
				name += " " + route
			}
			ctx := prop.Extract(req.Context(), propagation.HeaderCarrier(req.Header))
			ctx, span := tracer.Start(ctx, name,
				trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(
					semconv.HTTPRequestMethodKey.String(method),
					semconv.HTTPRoute(route),
					semconv.URLPath(req.URL.Path),
					semconv.URLScheme(scheme(req)),
					semconv.ServerAddress(req.Host),
					semconv.ClientAddress(c.RealIP()),
					semconv.UserAgentOriginal(req.UserAgent()),
				))
			defer span.End()
			c.SetRequest(req.WithContext(ctx))

			if err := next(c); err != nil {
				c.Error(err)
			}
			status := c.Response().Status
			span.SetAttributes(semconv.HTTPResponseStatusCode(status))
			if status >= http.StatusInternalServerError {
				span.SetStatus(codes.Error, http.StatusText(status))
			}
			return nil
		}
	}
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}
