package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/postgres"
)

// TestOpenErrors needs no server: every case fails before or at the ping.
func TestOpenErrors(t *testing.T) {
	cases := []struct {
		name string
		dsn  string
		cfg  postgres.Config
		want string
	}{
		{"other scheme", "sqlite://data/queue.db", postgres.Config{}, `dsn scheme is "sqlite", want postgres://`},
		{"not a URL", "postgres://%zz", postgres.Config{}, "dsn is not a URL"},
		{"bad port", "postgres://postgres@127.0.0.1:notaport/test", postgres.Config{}, "dsn is not a URL"},
		{"unreachable server", "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2",
			postgres.Config{}, "ping 127.0.0.1:1/test"},
		{"invalid config", "postgres://postgres@127.0.0.1:5432/test",
			postgres.Config{PollInterval: time.Second, MaxPollInterval: time.Millisecond}, "invalid config"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			b, err := postgres.Open(ctx, tc.dsn, tc.cfg)
			if err == nil {
				_ = b.Close()
				t.Fatalf("Open(%q) = nil error, want one containing %q", tc.dsn, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open(%q) error = %q, want it to contain %q", tc.dsn, err, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  postgres.Config
		ok   bool
	}{
		{"defaults", postgres.Config{}, true},
		{"max poll below poll", postgres.Config{PollInterval: 50 * time.Millisecond, MaxPollInterval: 10 * time.Millisecond}, false},
		{"negative resend", postgres.Config{ResendInterval: -time.Second}, false},
		{"tiny ack deadline", postgres.Config{AckDeadline: time.Millisecond}, false},
		{"negative batch", postgres.Config{SubscribeBatchSize: -1}, false},
		{"negative connections", postgres.Config{SubscriberMaxOpenConns: -1}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Open applies defaults before validating; a server is not
			// needed to see a validation error.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			b, err := postgres.Open(ctx, "postgres://postgres@127.0.0.1:1/x?connect_timeout=1", tc.cfg)
			if b != nil {
				_ = b.Close()
			}
			gotInvalid := err != nil && strings.Contains(err.Error(), "invalid config")
			if gotInvalid == tc.ok {
				t.Errorf("Open with %+v: error %v, want config valid = %v", tc.cfg, err, tc.ok)
			}
		})
	}
}

func TestValidateTopic(t *testing.T) {
	cases := []struct {
		topic string
		ok    bool
	}{
		{"orders.v1", true},
		{"order-placed_v2.eu1", true},
		{"order:eu$1", false}, // allowed in table names, but not by the other backends
		{"-leading-dash", false},
		{strings.Repeat("a", 45), true},
		{strings.Repeat("a", 46), false},
		{"", false},
		{"bad topic", false},
		{`quote"`, false},
		{"semi;colon", false},
		{"ünïcode", false},
	}
	for _, tc := range cases {
		err := postgres.ValidateTopic(tc.topic)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateTopic(%q) = %v, want ok = %v", tc.topic, err, tc.ok)
		}
		if err != nil && !errors.Is(err, postgres.ErrInvalidTopic) {
			t.Errorf("ValidateTopic(%q) = %v, want it to wrap ErrInvalidTopic", tc.topic, err)
		}
	}
}

func TestBadTopicAndMessage(t *testing.T) {
	b := openBackend(t, testDSN(t), fastConfig())
	if got := b.Name(); got != "postgres" {
		t.Errorf("Name() = %q, want %q", got, "postgres")
	}

	err := b.Publisher().Publish("bad topic!", message.NewMessage("u1", []byte("x")))
	if !errors.Is(err, postgres.ErrInvalidTopic) || !strings.Contains(err.Error(), `"bad topic!"`) {
		t.Errorf("Publish to a bad topic: got %v, want ErrInvalidTopic naming the topic", err)
	}

	sub := newSubscriber(t, b, "g")
	_, err = sub.Subscribe(context.Background(), "drop;table")
	if !errors.Is(err, postgres.ErrInvalidTopic) || !strings.Contains(err.Error(), `"drop;table"`) {
		t.Errorf("Subscribe to a bad topic: got %v, want ErrInvalidTopic naming the topic", err)
	}

	err = b.Publisher().Publish(newTopic(t), message.NewMessage(strings.Repeat("u", 37), nil))
	if err == nil || !strings.Contains(err.Error(), "must have 1 to 36 characters") {
		t.Errorf("Publish with a 37-character uuid: got %v, want a uuid length error", err)
	}

	if _, err := b.Subscriber(backend.SubscriberConfig{}); err == nil {
		t.Error("Subscriber without a consumer group: got nil error, want one")
	}
}

func TestClosedBackend(t *testing.T) {
	dsn := testDSN(t)
	ctx := context.Background()
	b, err := postgres.Open(ctx, dsn, fastConfig())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	sub, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "g"})
	if err != nil {
		t.Fatalf("subscriber: %v", err)
	}
	topic := newTopic(t)
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	// Close closes what is still open, so the channel ends.
	if err := b.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case _, ok := <-ch:
		if ok {
			t.Error("got a message after Close, want the channel closed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("messages channel still open 5s after backend Close")
	}
	if err := b.Publisher().Publish(topic, message.NewMessage("u1", nil)); !errors.Is(err, postgres.ErrClosed) {
		t.Errorf("Publish after Close: got %v, want ErrClosed", err)
	}
	if _, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "g"}); !errors.Is(err, postgres.ErrClosed) {
		t.Errorf("Subscriber after Close: got %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
}
