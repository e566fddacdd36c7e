package telemetry

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
)

func TestWatermillLoggerWritesWhatWatermillsAdapterWrites(t *testing.T) {
	levels := map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug}
	noTime := &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}
	logAll := func(l watermill.LoggerAdapter) {
		l = l.With(watermill.LogFields{"handler": "h"})
		l.Trace("trace", watermill.LogFields{"n": 1})
		l.Debug("debug", watermill.LogFields{"n": 2})
		l.Info("info", watermill.LogFields{"n": 3})
		l.Error("error", errors.New("boom"), watermill.LogFields{"n": 4})
	}
	var want, got bytes.Buffer
	logAll(watermill.NewSlogLoggerWithLevelMapping(slog.New(slog.NewJSONHandler(&want, noTime)), levels))
	logAll(NewWatermillLogger(slog.New(slog.NewJSONHandler(&got, noTime)), levels))
	if got.String() != want.String() {
		t.Errorf("got\n%s\nwant\n%s", got.String(), want.String())
	}
	// Debug level: trace dropped, info mapped to debug and kept.
	for _, msg := range []string{`"msg":"debug"`, `"msg":"info"`, `"msg":"error"`} {
		if !strings.Contains(got.String(), msg) {
			t.Errorf("got\n%s\nwant a record with %s", got.String(), msg)
		}
	}
	if strings.Contains(got.String(), `"msg":"trace"`) {
		t.Errorf("got\n%s\nwant no trace record at debug level", got.String())
	}
}

// Below the level, a record costs no allocation: Watermill's adapter
// would turn the fields into slog arguments first.
func TestWatermillLoggerBuildsNothingBelowTheLevel(t *testing.T) {
	l := NewWatermillLogger(slog.New(slog.NewJSONHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelWarn})), nil)
	fields := watermill.LogFields{"message_uuid": "m-1", "topic": "t"}
	if n := testing.AllocsPerRun(100, func() {
		l.Trace("received", fields)
		l.Debug("acked", fields)
		l.Info("started", fields)
	}); n != 0 {
		t.Errorf("got %v allocations per trace+debug+info below the level, want 0", n)
	}
}
