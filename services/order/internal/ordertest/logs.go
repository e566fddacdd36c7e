package ordertest

import (
	"context"
	"log/slog"
	"slices"
	"sync"
)

// Logs is an slog.Handler that keeps every record, for tests that check
// what was logged and at which level. Safe for concurrent use.
type Logs struct {
	mu  sync.Mutex
	got []slog.Record
}

var _ slog.Handler = (*Logs)(nil)

func (l *Logs) Enabled(context.Context, slog.Level) bool { return true }

func (l *Logs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, r.Clone())
	return nil
}

func (l *Logs) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *Logs) WithGroup(string) slog.Handler      { return l }

// Records returns the records kept so far, oldest first.
func (l *Logs) Records() []slog.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.got)
}
