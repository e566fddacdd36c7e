// Package retry is the router middleware that retries failed messages with
// exponential backoff and jitter and dead-letters those that keep failing or
// can never succeed.
//
// The attempt count is not kept here but read from the message's
// backend.MetadataAttempt, which the backend persists with the delivery: a
// restart of the consumer does not reset it. The backoff is not slept in the
// handler either: the middleware sets Watermill's delay metadata and returns
// the error, and the backend makes the message visible again after the
// delay, so a worker slot is not held while waiting.
package retry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/tracing"
)

// ErrPermanent marks an error that no retry can fix: an undecodable
// payload, an unknown message type, a violated contract. Such a message is
// dead-lettered at once. Wrap with Permanent.
var ErrPermanent = errors.New("permanent failure")

// Permanent wraps err so that errors.Is(err, ErrPermanent) holds.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return markedError{err: err, mark: ErrPermanent}
}

// ErrUnavailable marks an error that says the consumer could not do its
// work now, through no fault of the message: its own database is full,
// failing or read-only. Such a failure never dead-letters the message: it
// is retried with the backoff, up to MaxInterval apart, however many
// attempts the outage takes (an outage of seconds spent a message's five
// attempts, and with group commit every message of a failed commit's
// batch). The attempts still count: a message that failed so past
// MaxAttempts is dead-lettered at its next failure of another kind. Wrap
// with Unavailable.
var ErrUnavailable = errors.New("consumer unavailable")

// Unavailable wraps err so that errors.Is(err, ErrUnavailable) holds.
func Unavailable(err error) error {
	if err == nil {
		return nil
	}
	return markedError{err: err, mark: ErrUnavailable}
}

// markedError is err, with its text, that errors.Is also finds to be mark
// (ErrPermanent or ErrUnavailable).
type markedError struct{ err, mark error }

func (e markedError) Error() string   { return e.err.Error() }
func (e markedError) Unwrap() []error { return []error{e.err, e.mark} }

// Metadata keys the middleware writes on a dead-lettered message's copy.
const (
	// MetadataDeadLetterReason says why the message was given up:
	// ReasonMaxAttempts, ReasonPermanent, ReasonAbandoned or
	// ReasonUnreadable. It is backend.MetadataDeadLetterReason: a replay
	// keeps it, beside backend.MetadataReplayedFrom, which this middleware
	// keeps too when it dead-letters a replayed message again.
	MetadataDeadLetterReason = backend.MetadataDeadLetterReason
)

// Dead-letter reasons (MetadataDeadLetterReason).
const (
	// ReasonMaxAttempts: the handler failed on every one of MaxAttempts
	// attempts.
	ReasonMaxAttempts = "max attempts"
	// ReasonPermanent: the handler returned an ErrPermanent error.
	ReasonPermanent = "permanent"
	// ReasonAbandoned: the message's handling was abandoned MaxAbandoned
	// times in a row while it ran alone in its process (see
	// backend.MetadataAbandoned): it takes its process down.
	ReasonAbandoned = "abandoned"
	// ReasonUnreadable: the backend could not read the stored message
	// (the PostgreSQL backend: a row whose metadata is not a JSON object
	// of strings, written by something other than its publisher) and
	// dead-lettered it for the consumer group without handing it to a
	// handler; the last error says which row and what is wrong with it.
	// Not set by this middleware.
	ReasonUnreadable = "unreadable"
)

// Config configures the middleware. NewMiddleware fills in the defaults
// and reports an invalid config; Middleware panics on one.
type Config struct {
	// ConsumerGroup is the group whose handler this wraps; required.
	ConsumerGroup string
	// DeadLetters receives messages given up on; required.
	DeadLetters backend.DeadLetterStore

	// MaxAttempts is how many times a message is handled before it is
	// dead-lettered. Default 5.
	MaxAttempts int
	// MaxAbandoned is how many runs of a message alone in its process
	// may be abandoned in a row (the process died or froze before the
	// handler's outcome) before the message is dead-lettered, unhandled,
	// instead of being run again. The run that first abandons a message
	// is not counted: other messages ran beside it. Default 2: a message
	// that takes its process down is dead-lettered after its third crash
	// (devrun's restart limit allows three crashes within 30 s).
	MaxAbandoned int
	// InitialInterval is the delay after the first failure; each further
	// failure multiplies it by Multiplier, up to MaxInterval. Defaults
	// 100ms (or MaxInterval, when that is set shorter), 2, 30s.
	InitialInterval time.Duration
	Multiplier      float64
	MaxInterval     time.Duration
	// Jitter spreads each delay uniformly by ±Jitter of itself, so that
	// messages that failed together do not come back together; no delay
	// exceeds MaxInterval for it. Default 0.2 (0 means the default: set
	// NoJitter for none).
	Jitter float64
	// NoJitter turns Jitter off: each delay is Backoff's exactly.
	NoJitter bool

	// Logger for retries and dead letters. Default watermill.NopLogger.
	// When it is a ContextLogger, every record about a message is written
	// with the message's context (its consumer span: the record carries
	// the trace id) and a failure that will be retried is a warning;
	// otherwise the records go through Watermill's methods, without the
	// context, and that warning is written at info level.
	Logger watermill.LoggerAdapter
	// LogMetadata names metadata entries that the records about a message
	// carry: for each key present on the message, a field named by its
	// value (servicehost logs contracts.MetadataCorrelationID, the order
	// id, as "order_id"). Default none.
	LogMetadata map[string]string
	// OnDeadLetter, when set, is called after a message was dead-lettered
	// (for metrics).
	OnDeadLetter func(topic string)
	// OnRetry, when set, is called when a failed message is scheduled again.
	OnRetry func(topic string)

	now    func() time.Time
	random func() float64
}

// DefaultMaxAbandoned is Config.MaxAbandoned's default.
const DefaultMaxAbandoned = 2

func (c *Config) setDefaults() {
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.MaxAbandoned == 0 {
		c.MaxAbandoned = DefaultMaxAbandoned
	}
	if c.MaxInterval == 0 {
		c.MaxInterval = 30 * time.Second
	}
	if c.InitialInterval == 0 {
		c.InitialInterval = min(100*time.Millisecond, max(c.MaxInterval, 0))
	}
	if c.Multiplier == 0 {
		c.Multiplier = 2
	}
	switch {
	case c.NoJitter:
		c.Jitter = 0
	case c.Jitter == 0:
		c.Jitter = 0.2
	}
	if c.Logger == nil {
		c.Logger = watermill.NopLogger{}
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.random == nil {
		c.random = rand.Float64
	}
}

// Validate reports an unusable config.
func (c Config) Validate() error {
	var errs []error
	if c.ConsumerGroup == "" {
		errs = append(errs, errors.New("consumer group is required"))
	}
	if c.DeadLetters == nil {
		errs = append(errs, errors.New("dead-letter store is required"))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, errors.New("max attempts must be at least 1"))
	}
	if c.MaxAbandoned < 1 {
		errs = append(errs, errors.New("max abandoned must be at least 1"))
	}
	if c.InitialInterval < 0 || c.MaxInterval < c.InitialInterval {
		errs = append(errs, errors.New("intervals must satisfy 0 <= initial <= max"))
	}
	if c.Multiplier < 1 {
		errs = append(errs, errors.New("multiplier must be at least 1"))
	}
	if c.Jitter < 0 || c.Jitter >= 1 {
		errs = append(errs, errors.New("jitter must be in [0, 1)"))
	}
	return errors.Join(errs...)
}

// Backoff is the delay before attempt+1 after attempt failed (attempt is
// 1-based), before jitter.
func (c Config) Backoff(attempt int) time.Duration {
	d := float64(c.InitialInterval) * math.Pow(c.Multiplier, float64(max(attempt-1, 0)))
	if d > float64(c.MaxInterval) || math.IsInf(d, 0) {
		return c.MaxInterval
	}
	return time.Duration(d)
}

// NewMiddleware returns the retry and dead-letter middleware, or what is
// wrong with cfg (its defaults filled in).
func NewMiddleware(cfg Config) (message.HandlerMiddleware, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("retry middleware: %w", err)
	}
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			if n, err := strconv.Atoi(msg.Metadata.Get(backend.MetadataAbandoned)); err == nil && n >= cfg.MaxAbandoned {
				return nil, cfg.abandoned(msg, n)
			}
			produced, err := h(msg)
			if err == nil {
				return produced, nil
			}
			return nil, cfg.failed(msg, err)
		}
	}, nil
}

// failed decides between another attempt and the dead-letter store. It
// returns nil (ack) once the message is safely dead-lettered, and an error
// (nack) otherwise.
func (c Config) failed(msg *message.Message, handlerErr error) error {
	attempt, topic, fields := c.describe(msg)

	if err := msg.Context().Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		// The message's context was cancelled (the subscriber is closing,
		// or the lease is gone): the failure may be only that, and the
		// delivery is released and comes back whatever this returns. A
		// dead letter written now would stand beside a redelivery that
		// may well succeed. A context that ran out of time (the
		// PostgreSQL subscriber's ack deadline) is the message's own
		// slowness: that failure counts as any other, or a handler that
		// always outlives the deadline would come back for ever. A
		// warning: the router's own record of the error is at debug
		// level (RouterLogger), and a handler cut by a stop or a lost
		// lease is worth seeing at the default level.
		return c.report(msg, slog.LevelWarn, "Handler failed as its message was withdrawn; it will be delivered again", handlerErr, ErrorTypeWithdrawn, handlerErr, fields)
	}

	permanent := errors.Is(handlerErr, ErrPermanent)
	unavailable := !permanent && errors.Is(handlerErr, ErrUnavailable)
	if unavailable || (!permanent && attempt < c.MaxAttempts) {
		d := c.Backoff(attempt)
		d = min(d+time.Duration((c.random()*2-1)*c.Jitter*float64(d)), c.MaxInterval)
		msg.Metadata.Set(backend.MetadataLastError, truncate(handlerErr.Error(), 2000))
		delay.Message(msg, delay.For(d))
		if c.OnRetry != nil {
			c.OnRetry(topic)
		}
		class := ErrorTypeTransient
		if unavailable {
			class = ErrorTypeUnavailable
		}
		return c.report(msg, slog.LevelWarn, "Handler failed; will retry", handlerErr, class, handlerErr, fields.Add(watermill.LogFields{"retry_in": d.String()}))
	}

	reason := ReasonMaxAttempts
	if permanent {
		reason = ReasonPermanent
	}
	return c.deadLetter(msg, reason, handlerErr, attempt, fields)
}

// abandoned dead-letters a message whose runs alone were abandoned n times
// in a row, without handling it again.
func (c Config) abandoned(msg *message.Message, n int) error {
	attempt, _, fields := c.describe(msg)
	times := fmt.Sprintf("%d times in a row", n)
	if n == 1 {
		times = "once"
	}
	text := fmt.Sprintf("handling abandoned %s while the message ran alone in its process "+
		"(the process exited or froze before the handler returned); not handled again", times)
	if last := msg.Metadata.Get(backend.MetadataLastError); last != "" {
		text += "; the last error a handler returned: " + last
	}
	return c.deadLetter(msg, ReasonAbandoned, errors.New(text), attempt, fields)
}

// describe returns the message's attempt (1 when not set), its topic, and
// the log fields naming it: message_id (its UUID, under the name the
// services' own records give it), topic, consumer_group, attempt and
// those of LogMetadata.
func (c Config) describe(msg *message.Message) (attempt int, topic string, fields watermill.LogFields) {
	attempt = 1
	if n, err := strconv.Atoi(msg.Metadata.Get(backend.MetadataAttempt)); err == nil && n > 0 {
		attempt = n
	}
	topic = message.SubscribeTopicFromCtx(msg.Context())
	fields = watermill.LogFields{"message_id": msg.UUID, "topic": topic, "consumer_group": c.ConsumerGroup, "attempt": attempt}
	for key, field := range c.LogMetadata {
		if v, ok := msg.Metadata[key]; ok {
			fields[field] = v
		}
	}
	return attempt, topic, fields
}

// deadLetter stores msg as a dead letter and returns nil (ack), or an
// error (nack, with a backoff) when the store refuses it.
func (c Config) deadLetter(msg *message.Message, reason string, handlerErr error, attempt int, fields watermill.LogFields) error {
	topic := message.SubscribeTopicFromCtx(msg.Context())
	now := c.now().UTC()
	first := now
	if t, err := time.Parse(time.RFC3339Nano, msg.Metadata.Get(backend.MetadataFirstFailedAt)); err == nil {
		first = t
	}
	dl := backend.DeadLetter{
		MessageUUID:   msg.UUID,
		Topic:         topic,
		ConsumerGroup: c.ConsumerGroup,
		Payload:       msg.Payload,
		Metadata:      originalMetadata(msg.Metadata),
		Attempts:      attempt,
		LastError:     truncate(handlerErr.Error(), 4000),
		FirstFailedAt: first,
		LastFailedAt:  now,
		DeadAt:        now,
	}
	dl.Metadata[MetadataDeadLetterReason] = reason
	// The store write must happen even if the message's context is
	// cancelled (shutdown): otherwise the message is retried, which is
	// safe but loses the verdict.
	ctx := context.WithoutCancel(msg.Context())
	if err := c.DeadLetters.Put(ctx, dl); err != nil {
		// Back off as before another attempt: a store that refuses the
		// dead letter must not be hit again at once, nor the messages
		// behind this one starved.
		d := c.Backoff(attempt)
		delay.Message(msg, delay.For(d))
		// The record says why the message was to be dead-lettered too:
		// it is the only one at the default level (see RouterLogger).
		return c.report(msg, slog.LevelError, "Dead-lettering failed; the message will be retried", err, ErrorTypeDeadLetterFailed,
			fmt.Errorf("dead-letter after %v: %w", handlerErr, err), fields.Add(watermill.LogFields{
				"retry_in": d.String(), "reason": reason, "handler_error": handlerErr.Error(),
			}))
	}
	tracing.RecordDeadLetter(msg.Context(), reason, handlerErr)
	logRecord(c.Logger, msg.Context(), slog.LevelError, "Message dead-lettered", handlerErr, fields.Add(watermill.LogFields{"reason": reason}))
	if c.OnDeadLetter != nil {
		c.OnDeadLetter(topic)
	}
	return nil
}

// ContextLogger is a watermill.LoggerAdapter that can also write a record
// with a context and at any slog level, as slog.Logger.Log does.
// Watermill's adapter takes no context, so its records cannot carry what
// the context holds (the trace id of the message's span), and it has no
// warning level. pkg/telemetry's Watermill logger is one.
type ContextLogger interface {
	watermill.LoggerAdapter
	// LogContext writes msg at level with ctx and fields, after the
	// logger's own (With). fields["error"], when set, is an error.
	LogContext(ctx context.Context, level slog.Level, msg string, fields watermill.LogFields)
}

// Warn writes a warning through l, without a context: at warning level
// when l is a ContextLogger, otherwise at info level (Watermill's adapter
// has no warning level). err, when not nil, is its "error" field. For the
// expected outcomes of a bounded stop, say, which are no error of the
// service's but deserve more than an info record.
func Warn(l watermill.LoggerAdapter, msg string, err error, fields watermill.LogFields) {
	logRecord(l, context.Background(), slog.LevelWarn, msg, err, fields)
}

// logRecord writes a record through l: with ctx, at level, when l is a
// ContextLogger; otherwise through its Watermill methods (a warning at
// info level) without ctx. err, when not nil, is its "error" field.
func logRecord(l watermill.LoggerAdapter, ctx context.Context, level slog.Level, msg string, err error, fields watermill.LogFields) {
	if cl, ok := l.(ContextLogger); ok {
		if err != nil {
			fields = fields.Add(watermill.LogFields{"error": err})
		}
		cl.LogContext(ctx, level, msg, fields)
		return
	}
	if level >= slog.LevelError {
		l.Error(msg, err, fields)
		return
	}
	if err != nil {
		fields = fields.Add(watermill.LogFields{"error": err.Error()})
	}
	if level >= slog.LevelInfo {
		l.Info(msg, fields)
	} else {
		l.Debug(msg, fields)
	}
}

// The error.type of the consumer span of a failed attempt that the
// middleware sends back to be delivered again (a dead-lettered one's is
// its dead-letter reason: tracing.RecordDeadLetter). The handler's own
// error is the span's exception event.
const (
	// ErrorTypeTransient: the handler failed; the message is retried
	// after a backoff.
	ErrorTypeTransient = "transient"
	// ErrorTypeUnavailable: the handler found something it needs
	// unavailable (ErrUnavailable); retried without counting.
	ErrorTypeUnavailable = "unavailable"
	// ErrorTypeWithdrawn: the message was withdrawn while its handler
	// ran (a stop, a lost lease); it is delivered again.
	ErrorTypeWithdrawn = "withdrawn"
	// ErrorTypeDeadLetterFailed: the message was to be dead-lettered
	// and the store refused it; it is retried.
	ErrorTypeDeadLetterFailed = "dead letter failed"
)

// report writes the record text about msg at level, with logged as its
// error, and returns returned for the router as a reportedError of class
// (the span's error.type), so that RouterLogger writes the router's own
// record of it at debug level.
func (c Config) report(msg *message.Message, level slog.Level, text string, logged error, class string, returned error, fields watermill.LogFields) error {
	logRecord(c.Logger, msg.Context(), level, text, logged, fields)
	return &reportedError{err: returned, class: class, ctx: msg.Context(), fields: fields}
}

// reportedError is an error the middleware returns to the router after
// logging the failure itself, with the message's context and fields. Its
// text and what errors.Is and errors.As find in it are err's; its
// ErrorType (tracing.ErrorTyper) is class.
type reportedError struct {
	err    error
	class  string
	ctx    context.Context
	fields watermill.LogFields
}

var _ tracing.ErrorTyper = (*reportedError)(nil)

func (e *reportedError) Error() string     { return e.err.Error() }
func (e *reportedError) Unwrap() error     { return e.err }
func (e *reportedError) ErrorType() string { return e.class }

// RouterLogger returns the logger to give the Watermill router whose
// handlers the middleware wraps: l, except for the router's record of a
// handler error the middleware has logged already ("Handler returned
// error", which Watermill writes at error level for every failed
// attempt). That one is written at debug level, with the message's
// context and fields when l is a ContextLogger: the middleware's own
// record says what happens to the message, at the level that deserves (a
// warning for an attempt that will be retried, an error for a dead
// letter or a dead-letter store that refused one).
func RouterLogger(l watermill.LoggerAdapter) watermill.LoggerAdapter {
	return routerLogger{l}
}

type routerLogger struct{ watermill.LoggerAdapter }

func (l routerLogger) Error(msg string, err error, fields watermill.LogFields) {
	var r *reportedError
	if !errors.As(err, &r) {
		l.LoggerAdapter.Error(msg, err, fields)
		return
	}
	logRecord(l.LoggerAdapter, r.ctx, slog.LevelDebug, msg, err, r.fields.Add(fields))
}

func (l routerLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return routerLogger{l.LoggerAdapter.With(fields)}
}

// originalMetadata copies metadata without the keys that describe one
// delivery, so that a replay starts afresh.
func originalMetadata(m message.Metadata) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if IsDeliveryKey(k) {
			continue
		}
		out[k] = v
	}
	return out
}

// IsDeliveryKey reports whether a metadata key describes one delivery
// (attempt count, failure bookkeeping, redelivery delay) rather than the
// message itself.
func IsDeliveryKey(k string) bool {
	switch k {
	case backend.MetadataAttempt, backend.MetadataFirstFailedAt, backend.MetadataLastError,
		backend.MetadataReplayForGroup, backend.MetadataReplayID, backend.MetadataAbandoned, delay.DelayedForKey, delay.DelayedUntilKey:
		return true
	}
	return strings.HasPrefix(k, "_watermill")
}

// truncate returns s as text any store takes (backend.StorableText), cut
// to at most n bytes on a character boundary, with "…" when cut.
func truncate(s string, n int) string {
	s = backend.StorableText(s)
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
