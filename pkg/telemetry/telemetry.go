// Package telemetry sets up OpenTelemetry tracing, Prometheus metrics and
// structured logging for one orderflow service.
//
// Setup builds everything from a Config and the standard OTEL_* environment
// variables and returns a *Telemetry that owns it. Nothing is installed
// globally: pass the providers to the code that needs them, or opt in with
// Telemetry.SetGlobals. A service's run function typically does
//
//	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: "order"})
//	if err != nil {
//		return fmt.Errorf("telemetry: %w", err)
//	}
//	defer func() {
//		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
//		defer cancel()
//		_ = tel.Shutdown(ctx)
//	}()
//
// Environment variables honoured (see the OpenTelemetry SDK configuration
// specification):
//
//   - OTEL_TRACES_EXPORTER: "otlp" (default) or "none". With "none" spans
//     are still created and sampled, so logs carry trace ids, but nothing is
//     exported. Other values are rejected.
//   - OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL:
//     "http/protobuf" (default) or "grpc".
//   - OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT: a URL with an http or https
//     scheme and a host, checked here (the exporters would fall back to
//     localhost); _HEADERS, _TIMEOUT, _INSECURE,
//     _CERTIFICATE, _COMPRESSION: read by the OTLP exporters themselves.
//   - OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES: override the resource,
//     service.name included.
//   - OTEL_TRACES_SAMPLER[_ARG], OTEL_BSP_*, OTEL_SPAN_*_LIMIT: read by the
//     trace SDK.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Config configures Setup. Only ServiceName is required.
type Config struct {
	// ServiceName is the service.name resource attribute and the "service"
	// field of every log record, e.g. "order". OTEL_SERVICE_NAME and a
	// service.name in OTEL_RESOURCE_ATTRIBUTES take precedence.
	ServiceName string

	// ServiceVersion is the service.version resource attribute; optional
	// (OTEL_RESOURCE_ATTRIBUTES=service.version=… sets it too).
	ServiceVersion string

	// LogWriter receives the JSON log lines. Default os.Stderr. Writes are
	// serialised by the handler.
	LogWriter io.Writer

	// LogLevel is the minimum level logged. Default slog.LevelInfo.
	LogLevel slog.Leveler

	// ErrorLogInterval is the minimum time between two log records about
	// OpenTelemetry errors (an unreachable collector, mostly); the errors in
	// between are only counted. Default one minute.
	ErrorLogInterval time.Duration
}

func (c *Config) setDefaults() {
	if c.LogWriter == nil {
		c.LogWriter = os.Stderr
	}
	if c.LogLevel == nil {
		c.LogLevel = slog.LevelInfo
	}
	if c.ErrorLogInterval == 0 {
		c.ErrorLogInterval = time.Minute
	}
}

// Validate reports a config Setup cannot use.
func (c Config) Validate() error {
	if c.ServiceName == "" {
		return errors.New("service name is required")
	}
	if c.ErrorLogInterval < 0 {
		return errors.New("error log interval must not be negative")
	}
	return nil
}

// Telemetry holds a service's telemetry pipeline. Its fields are set by
// Setup and must not be replaced. Call Shutdown when the service stops.
type Telemetry struct {
	// TracerProvider creates spans and exports them in batches.
	TracerProvider *sdktrace.TracerProvider
	// MeterProvider creates instruments read by MetricsHandler.
	MeterProvider *sdkmetric.MeterProvider
	// Propagator is W3C Trace Context plus W3C Baggage.
	Propagator propagation.TextMapPropagator
	// MetricsHandler serves the Prometheus text format; mount it at
	// /metrics. Besides the OpenTelemetry instruments it reports the Go
	// runtime and process collectors. It uses a registry of its own, not
	// prometheus.DefaultRegisterer.
	MetricsHandler http.Handler
	// Logger writes JSON records with a "service" field and, when the
	// record's context holds a span, "trace_id" and "span_id". Use the
	// *Context methods (InfoContext, ErrorContext, …) to pass the context.
	Logger *slog.Logger
	// ErrorHandler logs OpenTelemetry errors through Logger, at most one
	// record per Config.ErrorLogInterval; errors in between are counted and
	// reported with the next record. Span export errors reach it without any
	// global setting; other SDK errors go to otel's global handler, which
	// SetGlobals points here.
	ErrorHandler otel.ErrorHandler
	// Resource describes the service on every span and metric.
	Resource *resource.Resource

	abortExports context.CancelFunc
	shutdownOnce sync.Once
	shutdownErr  error
}

// Setup builds the tracer provider, meter provider, propagator and logger of
// one service. It does not contact the collector: an unreachable OTLP
// endpoint shows up later as rate-limited log records, not as an error here.
// ctx bounds resource detection and exporter construction; it is not kept.
// On error, everything built so far has been shut down.
func Setup(ctx context.Context, cfg Config) (*Telemetry, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("telemetry config: %w", err)
	}

	res, resErr := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithProcessPID(),
		resource.WithProcessRuntimeName(),
		resource.WithProcessRuntimeVersion(),
		resource.WithAttributes(serviceAttrs(cfg)...),
		resource.WithFromEnv(),
	)
	if resErr != nil && !errors.Is(resErr, resource.ErrPartialResource) {
		return nil, fmt.Errorf("build resource: %w", resErr)
	}

	serviceName := cfg.ServiceName
	if v, ok := res.Set().Value(semconv.ServiceNameKey); ok && v.AsString() != "" {
		serviceName = v.AsString()
	}
	logger := slog.New(NewTraceHandler(slog.NewJSONHandler(cfg.LogWriter, &slog.HandlerOptions{
		Level: cfg.LogLevel,
	}))).With(slog.String("service", serviceName))
	if resErr != nil {
		logger.WarnContext(ctx, "telemetry resource is incomplete", slog.Any("error", resErr))
	}
	errHandler := newRateLimitedHandler(logger, cfg.ErrorLogInterval)

	abortCtx, abortExports := context.WithCancel(context.Background())
	spanExporter, err := newSpanExporter(ctx)
	if err != nil {
		abortExports()
		return nil, err
	}
	traceOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if spanExporter != nil {
		traceOpts = append(traceOpts, sdktrace.WithBatcher(&quietExporter{
			SpanExporter: spanExporter,
			handler:      errHandler,
			abort:        abortCtx,
		}))
	}
	tp := sdktrace.NewTracerProvider(traceOpts...)

	registry := prometheus.NewRegistry()
	mp, err := newMeterProvider(registry, res)
	if err != nil {
		abortExports()
		return nil, errors.Join(err, tp.Shutdown(ctx))
	}

	return &Telemetry{
		TracerProvider: tp,
		MeterProvider:  mp,
		Propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		MetricsHandler: promhttp.HandlerFor(registry, promhttp.HandlerOpts{}),
		Logger:         logger,
		ErrorHandler:   errHandler,
		Resource:       res,
		abortExports:   abortExports,
	}, nil
}

// serviceAttrs are the service's resource attributes: its name, its
// version when set, and an id of this process (service.instance.id, a
// random UUID), so that the spans of a service before and after a
// restart, or of two replicas, are told apart by more than a pid.
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES still win
// (resource.WithFromEnv comes after).
func serviceAttrs(cfg Config) []attribute.KeyValue {
	attrs := []attribute.KeyValue{semconv.ServiceName(cfg.ServiceName), semconv.ServiceInstanceID(uuid.NewString())}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, semconv.ServiceVersion(cfg.ServiceVersion))
	}
	return attrs
}

func newMeterProvider(registry *prometheus.Registry, res *resource.Resource) (*sdkmetric.MeterProvider, error) {
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := registry.Register(c); err != nil {
			return nil, fmt.Errorf("register prometheus collector: %w", err)
		}
	}
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	return sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(exporter)), nil
}

// Shutdown flushes the spans not yet exported and stops the providers. It
// returns when done or when ctx is done, whichever comes first: give it a
// context with a timeout. When ctx ends, exports still in flight are
// cancelled, so no export outlives Shutdown by more than a moment even if
// the collector is unreachable; their spans are lost.
//
// Only the first call does the work; later calls return its result. The
// providers must not be used afterwards (they become no-ops).
func (t *Telemetry) Shutdown(ctx context.Context) error {
	t.shutdownOnce.Do(func() {
		stop := context.AfterFunc(ctx, t.abortExports)
		defer stop()
		defer t.abortExports()

		var errs []error
		if err := t.TracerProvider.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shut down tracer provider: %w", err))
		}
		if err := t.MeterProvider.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shut down meter provider: %w", err))
		}
		t.shutdownErr = errors.Join(errs...)
	})
	return t.shutdownErr
}

// ForceFlush exports the spans ended so far and not exported yet, without
// stopping anything: for a process about to exit without Shutdown (a
// crash point, faults.Config.Flush). It returns when they are exported or
// when ctx ends, whichever comes first; give it a context with a timeout.
// The spans of an export that ctx cut short are lost.
func (t *Telemetry) ForceFlush(ctx context.Context) error {
	if err := t.TracerProvider.ForceFlush(ctx); err != nil {
		return fmt.Errorf("flush spans: %w", err)
	}
	return nil
}

// SetGlobals installs the tracer provider, meter provider, propagator and
// error handler as the otel globals, for libraries that only use
// otel.Tracer, otel.Meter and otel.Handle. It is an explicit opt-in, meant
// for main; call it at most once per process. It does not touch
// slog.Default: call slog.SetDefault(t.Logger) for that.
func (t *Telemetry) SetGlobals() {
	otel.SetTracerProvider(t.TracerProvider)
	otel.SetMeterProvider(t.MeterProvider)
	otel.SetTextMapPropagator(t.Propagator)
	otel.SetErrorHandler(t.ErrorHandler)
}
