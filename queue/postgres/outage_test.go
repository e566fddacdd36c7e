package postgres_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/postgres"
	"github.com/orderflow/orderflow/queue/retry"
)

// logRecord is one record of recordingLog.
type logRecord struct {
	level  slog.Level
	msg    string
	fields watermill.LogFields
}

func (r logRecord) String() string { return fmt.Sprintf("%s %q %v", r.level, r.msg, r.fields) }

// recordingLog is a retry.ContextLogger that keeps every record, its
// fields of With included (a later field replaces one of the same key).
type recordingLog struct {
	mu      *sync.Mutex
	records *[]logRecord
	fields  watermill.LogFields
}

var _ retry.ContextLogger = recordingLog{}

func newRecordingLog() recordingLog {
	return recordingLog{mu: new(sync.Mutex), records: new([]logRecord)}
}

func (l recordingLog) add(level slog.Level, msg string, fields watermill.LogFields) {
	l.mu.Lock()
	defer l.mu.Unlock()
	*l.records = append(*l.records, logRecord{level: level, msg: msg, fields: l.fields.Copy().Add(fields)})
}

func (l recordingLog) LogContext(_ context.Context, level slog.Level, msg string, fields watermill.LogFields) {
	l.add(level, msg, fields)
}

func (l recordingLog) Error(msg string, err error, fields watermill.LogFields) {
	l.add(slog.LevelError, msg, fields.Copy().Add(watermill.LogFields{"error": err}))
}
func (l recordingLog) Info(msg string, fields watermill.LogFields) {
	l.add(slog.LevelInfo, msg, fields)
}
func (l recordingLog) Debug(msg string, fields watermill.LogFields) {
	l.add(slog.LevelDebug, msg, fields)
}
func (l recordingLog) Trace(msg string, fields watermill.LogFields) {
	l.add(watermill.LevelTrace, msg, fields)
}
func (l recordingLog) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return recordingLog{mu: l.mu, records: l.records, fields: l.fields.Copy().Add(fields)}
}

// matching returns the records at level or above whose message contains
// msg.
func (l recordingLog) matching(level slog.Level, msg string) []logRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []logRecord
	for _, r := range *l.records {
		if r.level >= level && strings.Contains(r.msg, msg) {
			out = append(out, r)
		}
	}
	return out
}

// atLeast returns the records at level or above.
func (l recordingLog) atLeast(level slog.Level) []logRecord { return l.matching(level, "") }

// proxiedDSN is dsn through a new freezingProxy; the test is skipped when
// the server is reached through a Unix socket (as TestFrozenConsumerIsTakenOver).
func proxiedDSN(t *testing.T, dsn string) (string, *freezingProxy) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if u.Hostname() == "" || strings.HasPrefix(u.Hostname(), "/") {
		t.Fatalf("the test server is reached through a Unix socket; the proxy needs TCP")
	}
	return throughProxy(t, dsn)
}

// While the server is down, a subscription's polls fail: they back off
// (not one every RetryInterval), and the outage is logged as one error,
// then a warning at most every report interval, then one warning when
// polling works again; not an error per failed poll. The owner lock,
// lost with its session, is logged the same way: not a warning and an
// error at each of its checks.
func TestAnOutageIsLoggedOnceThenSummarised(t *testing.T) {
	dsn := testDSN(t)
	logs := newRecordingLog()
	cfg := fastConfig()
	cfg.RetryInterval = 20 * time.Millisecond
	cfg.MaxRetryInterval = 300 * time.Millisecond
	cfg.Logger = logs
	cfg = postgres.WithOutageReportEvery(cfg, time.Second)
	cfg = postgres.WithOwnerCheckEvery(cfg, 50*time.Millisecond)
	proxied, proxy := proxiedDSN(t, dsn)
	b := openBackend(t, proxied, cfg)
	direct := openBackend(t, dsn, fastConfig())
	topic := newTopic(t)

	ch := subscribe(t, newSubscriber(t, b, "g"), topic)
	publish(t, direct, topic, message.NewMessage("before", []byte("{}")))
	receive(t, ch).Ack()

	proxy.cut()
	const outage = 2500 * time.Millisecond
	time.Sleep(outage)
	proxy.restore()
	publish(t, direct, topic, message.NewMessage("after", []byte("{}")))
	if m := receive(t, ch); m.UUID != "after" {
		t.Fatalf("got %s, want after", m.UUID)
	} else {
		m.Ack()
	}

	// The poll that found "after" ends, and says polling works, once its
	// batch has committed.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if len(logs.matching(slog.LevelWarn, "Polling messages works again")) > 0 &&
			len(logs.matching(slog.LevelWarn, "Owner lock taken again")) > 0 {
			break
		}
	}
	polls := logs.matching(slog.LevelDebug, "poll messages")
	var errs, warns, failed int
	for _, r := range polls {
		switch {
		case r.level >= slog.LevelError:
			errs++
		case r.level == slog.LevelWarn && strings.HasPrefix(r.msg, "Still"):
			warns++
		}
		if n, ok := r.fields["failed_polls"].(int); ok {
			failed = max(failed, n)
		}
	}
	if errs != 1 {
		t.Errorf("got %d error records of failed polls in a %s outage, want 1:\n%v", errs, outage, polls)
	}
	if warns < 1 || warns > 3 {
		t.Errorf("got %d warnings that polls still fail in a %s outage, report interval 1s, want 1 to 3:\n%v", warns, outage, polls)
	}
	// Backing off from 20ms to 300ms (jittered), a 2.5s outage takes
	// about 12 polls; at a steady 20ms it would take 125.
	if failed < 3 || failed > 40 {
		t.Errorf("counted %d failed polls in a %s outage, want about 12 (backing off to 300ms):\n%v", failed, outage, polls)
	}
	if again := logs.matching(slog.LevelWarn, "Polling messages works again"); len(again) != 1 {
		t.Errorf("got %d records that polling works again, want 1:\n%v", len(again), polls)
	}

	// Checked every 50ms, the owner lock is found lost once, then each
	// check fails to take it again until the server is back.
	owner := logs.matching(slog.LevelDebug, "wner lock")
	for _, tc := range []struct {
		msg      string
		level    slog.Level
		min, max int
	}{
		{"Owner lock lost", slog.LevelWarn, 1, 1},
		{"Cannot take an owner lock", slog.LevelError, 1, 1},
		{"Still cannot take an owner lock", slog.LevelWarn, 1, 3},
		{"Owner lock taken again", slog.LevelWarn, 1, 1},
	} {
		var got int
		for _, r := range owner {
			if strings.HasPrefix(r.msg, tc.msg) && r.level == tc.level {
				got++
			}
		}
		if got < tc.min || got > tc.max {
			t.Errorf("got %d %s records %q in a %s outage, owner lock checked every 50ms, want %d to %d:\n%v",
				got, tc.level, tc.msg, outage, tc.min, tc.max, owner)
		}
	}
	t.Logf("records at warning level or above:\n%v", logs.atLeast(slog.LevelWarn))
}
