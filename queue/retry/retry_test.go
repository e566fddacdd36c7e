package retry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/delay"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/tracing"
)

func TestBackoffGrowsExponentiallyUpToTheCap(t *testing.T) {
	c := Config{InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: time.Second}
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{0, 100 * time.Millisecond},
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{3, 400 * time.Millisecond},
		{4, 800 * time.Millisecond},
		{5, time.Second},
		{500, time.Second},
	}
	for _, tt := range tests {
		if got := c.Backoff(tt.attempt); got != tt.want {
			t.Errorf("Backoff(%d): got %v, want %v", tt.attempt, got, tt.want)
		}
	}
}

func TestPermanentIsRecognisedThroughWrapping(t *testing.T) {
	base := errors.New("bad payload")
	err := fmt.Errorf("handle: %w", Permanent(base))
	if !errors.Is(err, ErrPermanent) {
		t.Error("errors.Is(wrapped Permanent, ErrPermanent): got false, want true")
	}
	if !errors.Is(err, base) {
		t.Error("errors.Is(wrapped Permanent, cause): got false, want true")
	}
	if errors.Is(base, ErrPermanent) {
		t.Error("errors.Is(plain error, ErrPermanent): got true, want false")
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil): got non-nil, want nil")
	}
}

func TestValidateNamesEveryProblem(t *testing.T) {
	c := Config{MaxAttempts: -1, MaxAbandoned: -1, Multiplier: 0.5, Jitter: 1, InitialInterval: time.Second, MaxInterval: time.Millisecond}
	err := c.Validate()
	for _, want := range []string{"consumer group", "dead-letter store", "max attempts", "max abandoned", "intervals", "multiplier", "jitter"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: got %v, want it to mention %q", err, want)
		}
	}
}

func TestDeliveryKeysAreNotPartOfTheMessage(t *testing.T) {
	for _, k := range []string{"attempt", "first_failed_at", "last_error", "replay_for_group", "abandoned", "_watermill_delayed_for", "_watermill_anything"} {
		if !IsDeliveryKey(k) {
			t.Errorf("IsDeliveryKey(%q): got false, want true", k)
		}
	}
	for _, k := range []string{"traceparent", "correlation_id", "type"} {
		if IsDeliveryKey(k) {
			t.Errorf("IsDeliveryKey(%q): got true, want false", k)
		}
	}
}

// An error text is cut on a character boundary and made storable: valid
// UTF-8 without NUL bytes, as PostgreSQL's text columns require.
func TestTruncateKeepsTextStorable(t *testing.T) {
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{"short", "boom", 10, "boom"},
		{"cut inside a character", "aaaé", 4, "aaa…"},
		{"cut after a character", "aaé", 4, "aaé"},
		{"invalid bytes", "a\xffb", 10, "a\uFFFDb"},
		{"NUL", "a\x00b", 10, "a\uFFFDb"},
	}
	for _, tc := range tests {
		got := truncate(tc.in, tc.n)
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("%s: truncate(%q, %d): got %q, want %q", tc.name, tc.in, tc.n, got, tc.want)
		}
	}
	long := strings.Repeat("ü", 2100) // 4,200 bytes: the cut falls inside a character
	if got := truncate(long, 4000); !utf8.ValidString(got) || len(got) > 4000+len("…") {
		t.Errorf("truncate of %d bytes: got %d bytes, valid UTF-8 %v", len(long), len(got), utf8.ValidString(got))
	}
}

// failingStore refuses every dead letter.
type failingStore struct {
	backend.DeadLetterStore
	puts int
}

func (s *failingStore) Put(context.Context, backend.DeadLetter) error {
	s.puts++
	return errors.New("store refused")
}

// levelLogger is a ContextLogger that keeps each record's level, message
// and fields.
type levelLogger struct {
	watermill.LoggerAdapter
	records *[]levelRecord
}

type levelRecord struct {
	level  slog.Level
	msg    string
	fields watermill.LogFields
}

func newLevelLogger() levelLogger {
	return levelLogger{LoggerAdapter: watermill.NopLogger{}, records: new([]levelRecord)}
}

func (l levelLogger) LogContext(_ context.Context, level slog.Level, msg string, fields watermill.LogFields) {
	*l.records = append(*l.records, levelRecord{level: level, msg: msg, fields: fields})
}

// A dead letter the store refuses is nacked for another try after a
// backoff, not at once: the store is not hammered, the messages behind it
// not starved. Its record, an error, says why the message was to be
// dead-lettered: the router's own record of the failure, which has the
// handler's error, is at debug level.
func TestRefusedDeadLetterIsRetriedAfterABackoff(t *testing.T) {
	store := &failingStore{}
	logger := newLevelLogger()
	h := mustMiddleware(t, Config{ConsumerGroup: "g", DeadLetters: store, MaxAttempts: 1, InitialInterval: time.Second, MaxInterval: time.Second, Jitter: 0,
		Logger: logger})(
		func(*message.Message) ([]*message.Message, error) { return nil, Permanent(errors.New("poison")) })
	msg := message.NewMessage("m-1", []byte("x"))
	if _, err := h(msg); err == nil || store.puts != 1 {
		t.Fatalf("handler: got %v after %d puts, want an error after 1", err, store.puts)
	}
	if got := msg.Metadata.Get(delay.DelayedForKey); got != time.Second.String() {
		t.Errorf("delay: got %q, want %q", got, time.Second.String())
	}
	if got := *logger.records; len(got) != 1 || got[0].level != slog.LevelError ||
		got[0].fields["handler_error"] != "poison" || got[0].fields["reason"] != ReasonPermanent {
		t.Errorf("records: got %+v, want one error with handler_error poison and reason %s", got, ReasonPermanent)
	}
}

// A handler that fails once its message's context has ended (a subscriber
// closing cancels the handlers still running past the shutdown timeout) is
// not dead-lettered: the delivery is released and the message comes back,
// and a dead letter would stand beside a redelivery that succeeds.
func TestFailureOfAWithdrawnMessageIsNotDeadLettered(t *testing.T) {
	store := &failingStore{}
	logger := newLevelLogger()
	h := mustMiddleware(t, Config{ConsumerGroup: "g", DeadLetters: store, MaxAttempts: 1, Logger: logger})(
		func(msg *message.Message) ([]*message.Message, error) {
			<-msg.Context().Done()
			return nil, fmt.Errorf("charge: %w", msg.Context().Err())
		})
	msg := message.NewMessage("m-1", []byte("x"))
	ctx, cancel := context.WithCancel(context.Background())
	msg.SetContext(ctx)
	cancel()
	if _, err := h(msg); err == nil {
		t.Error("handler: got nil (ack), want an error (nack)")
	}
	if store.puts != 0 {
		t.Errorf("dead letters written: got %d, want 0", store.puts)
	}
	// A warning, seen at the default level: the router's record is not.
	if got := *logger.records; len(got) != 1 || got[0].level != slog.LevelWarn {
		t.Errorf("records: got %+v, want one warning", got)
	}
}

// A handler that fails because its message's context ran out of time
// (the PostgreSQL subscriber's ack deadline) has made an attempt: it is
// retried with backoff and dead-lettered once its attempts are spent, not
// taken for withdrawn and handed out again for ever.
func TestFailureAfterTheMessagesDeadlineCountsAsAnAttempt(t *testing.T) {
	for _, tc := range []struct {
		attempt    int
		wantDelay  bool
		wantLetter int
	}{
		{attempt: 1, wantDelay: true},
		{attempt: 2, wantLetter: 1},
	} {
		t.Run(fmt.Sprintf("attempt %d of 2", tc.attempt), func(t *testing.T) {
			store := &countingStore{}
			h := mustMiddleware(t, Config{ConsumerGroup: "g", DeadLetters: store, MaxAttempts: 2})(
				func(msg *message.Message) ([]*message.Message, error) {
					<-msg.Context().Done()
					return nil, fmt.Errorf("charge: %w", msg.Context().Err())
				})
			msg := message.NewMessage("m-1", []byte("x"))
			msg.Metadata.Set(backend.MetadataAttempt, strconv.Itoa(tc.attempt))
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			defer cancel()
			msg.SetContext(ctx)
			_, err := h(msg)
			if got := msg.Metadata.Get(delay.DelayedForKey) != ""; got != tc.wantDelay {
				t.Errorf("retried with a delay: got %v, want %v", got, tc.wantDelay)
			}
			if (err == nil) != (tc.wantLetter == 1) {
				t.Errorf("handler: got %v, want an ack (nil) only when dead-lettered", err)
			}
			if store.puts != tc.wantLetter {
				t.Errorf("dead letters written: got %d, want %d", store.puts, tc.wantLetter)
			}
		})
	}
}

// countingStore records the dead letters it is given.
type countingStore struct {
	backend.DeadLetterStore
	puts int
	last backend.DeadLetter
}

func (s *countingStore) Put(_ context.Context, dl backend.DeadLetter) error {
	s.puts++
	s.last = dl
	return nil
}

// A message whose runs alone were abandoned MaxAbandoned times in a row
// (it takes its process down) is dead-lettered without being handled
// again; one abandoned fewer times is handled.
func TestMessageAbandonedTooOftenIsDeadLetteredUnhandled(t *testing.T) {
	tests := []struct {
		abandoned   string // backend.MetadataAbandoned; "" when not set
		wantHandled bool
	}{
		{abandoned: "", wantHandled: true},
		{abandoned: "0", wantHandled: true},
		{abandoned: "2", wantHandled: true},
		{abandoned: "3", wantHandled: false},
		{abandoned: "4", wantHandled: false},
	}
	for _, tc := range tests {
		t.Run("abandoned="+tc.abandoned, func(t *testing.T) {
			store := &countingStore{}
			handled := false
			h := mustMiddleware(t, Config{ConsumerGroup: "g", DeadLetters: store, MaxAbandoned: 3})(
				func(*message.Message) ([]*message.Message, error) {
					handled = true
					return nil, nil
				})
			msg := message.NewMessage("m-1", []byte("x"))
			msg.Metadata.Set("type", "payment.charge")
			msg.Metadata.Set(backend.MetadataAttempt, "6")
			msg.Metadata.Set(backend.MetadataLastError, "gateway timeout")
			if tc.abandoned != "" {
				msg.Metadata.Set(backend.MetadataAbandoned, tc.abandoned)
			}
			if _, err := h(msg); err != nil {
				t.Fatalf("handler: got %v, want nil (ack)", err)
			}
			if handled != tc.wantHandled {
				t.Fatalf("handled: got %v, want %v", handled, tc.wantHandled)
			}
			if tc.wantHandled {
				if store.puts != 0 {
					t.Errorf("dead letters written: got %d, want 0", store.puts)
				}
				return
			}
			dl := store.last
			if store.puts != 1 || dl.Metadata[MetadataDeadLetterReason] != ReasonAbandoned {
				t.Fatalf("dead letters: got %d with reason %q, want 1 with %q", store.puts, dl.Metadata[MetadataDeadLetterReason], ReasonAbandoned)
			}
			if dl.Attempts != 6 {
				t.Errorf("dead letter attempts: got %d, want 6", dl.Attempts)
			}
			for _, want := range []string{"abandoned " + tc.abandoned + " times", "ran alone", "gateway timeout"} {
				if !strings.Contains(dl.LastError, want) {
					t.Errorf("dead letter error: got %q, want it to contain %q", dl.LastError, want)
				}
			}
			if _, ok := dl.Metadata[backend.MetadataAbandoned]; ok || dl.Metadata["type"] != "payment.charge" {
				t.Errorf("dead letter metadata: got %v, want the message's own keys without the delivery's", dl.Metadata)
			}
		})
	}
}

// A failure that says the consumer is unavailable (its own database full)
// is retried after the capped backoff however many attempts it has
// taken, never dead-lettered; once the message has spent its attempts, a
// failure of another kind dead-letters it.
func TestUnavailableConsumerIsRetriedNotDeadLettered(t *testing.T) {
	full := fmt.Errorf("handle: %w", Unavailable(errors.New("database or disk is full")))
	tests := []struct {
		name       string
		err        error
		attempt    int
		wantDelay  string // "" when acked (dead-lettered)
		wantLetter int
	}{
		{"unavailable, first attempt", full, 1, (100 * time.Millisecond).String(), 0},
		{"unavailable, attempts spent", full, 5, (1 * time.Second).String(), 0},
		{"unavailable, far past the attempts", full, 40, (1 * time.Second).String(), 0},
		{"another failure, attempts spent", errors.New("card declined by a bug"), 41, "", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := &countingStore{}
			h := mustMiddleware(t, Config{ConsumerGroup: "g", DeadLetters: store, MaxAttempts: 5, InitialInterval: 100 * time.Millisecond, MaxInterval: time.Second,
				random: func() float64 { return 0.5 }})( // no jitter
				func(*message.Message) ([]*message.Message, error) { return nil, tc.err })
			msg := message.NewMessage("m-1", []byte("x"))
			msg.Metadata.Set(backend.MetadataAttempt, strconv.Itoa(tc.attempt))
			_, err := h(msg)
			if got := msg.Metadata.Get(delay.DelayedForKey); got != tc.wantDelay {
				t.Errorf("delay: got %q, want %q", got, tc.wantDelay)
			}
			if (err == nil) != (tc.wantDelay == "") {
				t.Errorf("handler: got %v, want an error (nack) only when retried", err)
			}
			if store.puts != tc.wantLetter {
				t.Errorf("dead letters: got %d, want %d", store.puts, tc.wantLetter)
			}
		})
	}
}

// The delay after a failure: Backoff's, spread by Jitter, never past
// MaxInterval; none spread with NoJitter.
func TestRetryDelayJitterAndItsCap(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		random float64 // uniform draw in [0, 1): 0.5 is no spread
		err    error
		want   time.Duration
	}{
		{"jitter up to its most", Config{InitialInterval: 100 * time.Millisecond}, 0.999, errors.New("x"), 119960 * time.Microsecond},
		{"jitter down", Config{InitialInterval: 100 * time.Millisecond}, 0, errors.New("x"), 80 * time.Millisecond},
		{"no jitter", Config{InitialInterval: 100 * time.Millisecond, NoJitter: true}, 0.999, errors.New("x"), 100 * time.Millisecond},
		{"jitter never past MaxInterval", Config{InitialInterval: time.Second, MaxInterval: time.Second}, 0.999, Unavailable(errors.New("disk full")), time.Second},
		{"MaxInterval alone below the default initial", Config{MaxInterval: 50 * time.Millisecond, NoJitter: true}, 0.5, errors.New("x"), 50 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.ConsumerGroup, cfg.DeadLetters = "g", &countingStore{}
			cfg.random = func() float64 { return tc.random }
			mw, err := NewMiddleware(cfg)
			if err != nil {
				t.Fatalf("NewMiddleware: %v", err)
			}
			h := mw(func(*message.Message) ([]*message.Message, error) { return nil, tc.err })
			msg := message.NewMessage("m-1", []byte("x"))
			msg.Metadata.Set(backend.MetadataAttempt, "1")
			_, _ = h(msg)
			if got := msg.Metadata.Get(delay.DelayedForKey); got != tc.want.String() {
				t.Errorf("delay: got %s, want %s", got, tc.want)
			}
		})
	}
}

// NewMiddleware returns what is wrong with a config.
func TestNewMiddlewareReportsAnInvalidConfig(t *testing.T) {
	_, err := NewMiddleware(Config{ConsumerGroup: "g", DeadLetters: &countingStore{}, MaxAttempts: -1})
	if err == nil || !strings.Contains(err.Error(), "max attempts") {
		t.Errorf("NewMiddleware with MaxAttempts -1: got %v, want an error about max attempts", err)
	}
}

// The error a failed attempt returns names what happens to the message
// (tracing.ErrorTyper), which the consumer span records as its
// error.type: the handler's own error is wrapped, its Go type says
// nothing.
func TestAFailedAttemptNamesItsClass(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name  string
		store backend.DeadLetterStore
		ctx   context.Context
		err   error
		want  string
	}{
		{"retried", &countingStore{}, context.Background(), errors.New("gateway down"), ErrorTypeTransient},
		{"unavailable", &countingStore{}, context.Background(), Unavailable(errors.New("disk full")), ErrorTypeUnavailable},
		{"withdrawn", &countingStore{}, cancelled, context.Canceled, ErrorTypeWithdrawn},
		{"dead letter refused", &failingStore{}, context.Background(), Permanent(errors.New("poison")), ErrorTypeDeadLetterFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mw, err := NewMiddleware(Config{ConsumerGroup: "g", DeadLetters: tc.store, MaxAttempts: 3})
			if err != nil {
				t.Fatal(err)
			}
			msg := message.NewMessage("m-1", []byte("x"))
			msg.SetContext(tc.ctx)
			_, err = mw(func(*message.Message) ([]*message.Message, error) { return nil, tc.err })(msg)
			typer, ok := errors.AsType[tracing.ErrorTyper](err)
			if !ok {
				t.Fatalf("got %v (%T), want a tracing.ErrorTyper", err, err)
			}
			if got := typer.ErrorType(); got != tc.want {
				t.Errorf("got error type %q, want %q", got, tc.want)
			}
		})
	}
}

// mustMiddleware is NewMiddleware for a config the test knows is valid.
func mustMiddleware(t *testing.T, cfg Config) message.HandlerMiddleware {
	t.Helper()
	m, err := NewMiddleware(cfg)
	if err != nil {
		t.Fatalf("NewMiddleware: %v", err)
	}
	return m
}
