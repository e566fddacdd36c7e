package telemetry

import (
	"context"
	"log/slog"
	"maps"
	"slices"

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
	return &watermillLogger{base: logger, logger: logger, levels: levels}
}

// watermillLogger writes as Watermill's slog adapter does: the fields as
// slog arguments, the error last, context.Background() unless LogContext
// is given one. Unlike Watermill's adapter, a field given again replaces
// the one of the same key (the later wins), in With and in a record:
// watermill-sql adds its poll's error to its subscription's logger with
// With after every failed poll and keeps that logger, so that appending
// would grow each record of an outage by one "err" field per failed poll,
// for ever.
type watermillLogger struct {
	base   *slog.Logger // without the fields of With
	logger *slog.Logger // base with the fields of With
	keys   []string     // of the fields of With, in the order first given
	fields watermill.LogFields
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
	logger, args := w.logger, []any(nil)
	if w.overrides(fields, withErr) {
		// A field of the record replaces one of With: write the record
		// from base, with the fields of With it does not replace.
		logger = w.base
		args = make([]any, 0, 2*(len(w.keys)+len(fields)+1))
		for _, k := range w.keys {
			if _, ok := fields[k]; ok || withErr && k == "error" {
				continue
			}
			args = append(args, k, w.fields[k])
		}
	} else {
		n := 2 * len(fields)
		if withErr {
			n += 2
		}
		args = make([]any, 0, n)
	}
	for k, v := range fields {
		args = append(args, k, v)
	}
	if withErr {
		args = append(args, "error", err)
	}
	logger.Log(ctx, level, msg, args...)
}

// overrides reports whether a record's fields (and its error, when
// withErr) name a field of With.
func (w *watermillLogger) overrides(fields watermill.LogFields, withErr bool) bool {
	if len(w.fields) == 0 {
		return false
	}
	if _, ok := w.fields["error"]; ok && withErr {
		return true
	}
	for k := range fields {
		if _, ok := w.fields[k]; ok {
			return true
		}
	}
	return false
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

// With returns a logger whose records carry fields first, after w's own
// fields that fields does not name: a field of the same key replaces w's
// (it keeps its place), so that a logger With'd over and over with the
// same key (watermill-sql's subscription logger, given each failed poll's
// "err") writes that key once.
func (w *watermillLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	if len(fields) == 0 {
		return w
	}
	merged := make(watermill.LogFields, len(w.fields)+len(fields))
	maps.Copy(merged, w.fields)
	keys := slices.Clone(w.keys)
	added := make([]string, 0, len(fields))
	for k, v := range fields {
		if _, ok := merged[k]; !ok {
			added = append(added, k)
		}
		merged[k] = v
	}
	slices.Sort(added) // a stable order across records
	keys = append(keys, added...)
	args := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, k, merged[k])
	}
	return &watermillLogger{base: w.base, logger: w.base.With(args...), keys: keys, fields: merged, levels: w.levels}
}
