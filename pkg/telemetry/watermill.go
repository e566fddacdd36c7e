package telemetry

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// NewWatermillLogger returns a Watermill logger that writes to logger as
// watermill.NewSlogLoggerWithLevelMapping does (levels may be nil), but
// drops a record below the logger's level before building it: Watermill's
// adapter turns the fields into slog arguments first, and its router and watermill-sql's subscriber log at trace level
// for every message (0.9 % of the services' CPU under load, at the
// default level where none of it is written). A nil logger is
// slog.Default(), as in Watermill.
//
// It also writes records with a context (the queue's retry.ContextLogger):
// the queue's retry middleware logs a message's failed attempts and dead
// letters through it with the message's context, so that those records
// carry the trace id of the message's span, as the logger's own records
// logged with a context do.
func NewWatermillLogger(logger *slog.Logger, levels map[slog.Level]slog.Level) watermill.LoggerAdapter {
	if logger == nil {
		logger = slog.Default()
	}
	return &watermillLogger{logger: logger, levels: levels}
}

// watermillLogger writes as Watermill's slog adapter does: the fields as
// slog arguments, the error last, context.Background() unless LogContext
// is given one.
type watermillLogger struct {
	logger *slog.Logger // with the fields of With
	levels map[slog.Level]slog.Level
}

// level is the level a record of Watermill's level is written at.
func (w *watermillLogger) level(level slog.Level) slog.Level {
	if mapped, ok := w.levels[level]; ok {
		return mapped
	}
	return level
}

// log writes a record of Watermill's level, unless that level is not
// enabled: then it builds nothing.
func (w *watermillLogger) log(ctx context.Context, level slog.Level, msg string, fields watermill.LogFields, err error, withErr bool) {
	level = w.level(level)
	if !w.logger.Enabled(ctx, level) {
		return
	}
	n := 2 * len(fields)
	if withErr {
		n += 2
	}
	args := make([]any, 0, n)
	for k, v := range fields {
		args = append(args, k, v)
	}
	if withErr {
		args = append(args, "error", err)
	}
	w.logger.Log(ctx, level, msg, args...)
}

func (w *watermillLogger) Error(msg string, err error, fields watermill.LogFields) {
	w.log(context.Background(), slog.LevelError, msg, fields, err, true)
}

func (w *watermillLogger) Info(msg string, fields watermill.LogFields) {
	w.log(context.Background(), slog.LevelInfo, msg, fields, nil, false)
}

func (w *watermillLogger) Debug(msg string, fields watermill.LogFields) {
	w.log(context.Background(), slog.LevelDebug, msg, fields, nil, false)
}

func (w *watermillLogger) Trace(msg string, fields watermill.LogFields) {
	w.log(context.Background(), watermill.LevelTrace, msg, fields, nil, false)
}

// LogContext writes a record at level (mapped as Watermill's levels are)
// with ctx: the logger's handler sees ctx, so a record about a message
// carries the trace id of the message's span (see NewTraceHandler).
// fields["error"] is written as any other field.
func (w *watermillLogger) LogContext(ctx context.Context, level slog.Level, msg string, fields watermill.LogFields) {
	w.log(ctx, level, msg, fields, nil, false)
}

// With returns a logger whose records carry fields first.
func (w *watermillLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	args := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		args = append(args, k, v)
	}
	return &watermillLogger{logger: w.logger.With(args...), levels: w.levels}
}
