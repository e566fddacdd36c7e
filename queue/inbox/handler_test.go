package inbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/queue/inbox"
	"github.com/orderflow/orderflow/queue/outbox"
	"github.com/orderflow/orderflow/queue/tracing"
)

// TestHandlerWithOutbox runs the whole consumer side of a service: a router
// consumes from the queue (GoChannel here), the inbox handler applies the
// effect and stores the reply in the outbox in one transaction, and the
// forwarder relays the reply to the queue.
func TestHandlerWithOutbox(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, 1)
	ib := newInbox(t, db, inbox.Config{})
	ob, err := outbox.New(ctx, db, outbox.Config{})
	require.NoError(t, err)

	queue := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 64}, nil)
	t.Cleanup(func() { require.NoError(t, queue.Close()) })
	replies, err := queue.Subscribe(ctx, "payment.events")
	require.NoError(t, err)
	audits, err := queue.Subscribe(ctx, "audit.events")
	require.NoError(t, err)

	var calls atomic.Int64
	var failNext atomic.Bool
	handler, err := ib.Handler(inbox.HandlerConfig{
		ConsumerGroup: "payment",
		Outbox:        ob,
		PublishTopic:  "payment.events",
	}, func(ctx context.Context, msg *message.Message, tx *sql.Tx) ([]*message.Message, error) {
		calls.Add(1)
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO effects (message_id, note) VALUES (?, 'charged')`, msg.UUID); err != nil {
			return nil, err
		}
		// A second topic, written directly to the outbox in the same tx.
		if err := ob.Publisher(tx).Publish("audit.events", message.NewMessage("audit-"+msg.UUID, nil)); err != nil {
			return nil, err
		}
		if failNext.CompareAndSwap(true, false) {
			return nil, errors.New("transient failure after the writes")
		}
		return []*message.Message{message.NewMessage("charged-"+msg.UUID, []byte(`{"status":"charged"}`))}, nil
	})
	require.NoError(t, err)

	router, err := message.NewRouter(message.RouterConfig{}, nil)
	require.NoError(t, err)
	router.AddConsumerHandler("payment", "payment.commands", queue, func(msg *message.Message) error {
		_, err := handler(msg)
		return err
	})
	fwd, err := outbox.NewForwarder(db, queue, outbox.ForwarderConfig{Outbox: ob})
	require.NoError(t, err)

	var wg sync.WaitGroup
	runCtx, stop := context.WithCancel(ctx)
	wg.Go(func() { assert.NoError(t, router.Run(runCtx)) })
	wg.Go(func() { assert.NoError(t, fwd.Run(runCtx)) })
	t.Cleanup(func() {
		stop()
		wg.Wait()
		require.NoError(t, router.Close())
	})
	<-router.Running()
	<-fwd.Running()

	// The same command delivered three times, and one whose first attempt
	// fails after writing (rolled back, redelivered by GoChannel on nack).
	for range 3 {
		require.NoError(t, queue.Publish("payment.commands", message.NewMessage("charge-o-1", nil)))
	}
	failNext.Store(true)
	require.NoError(t, queue.Publish("payment.commands", message.NewMessage("charge-o-2", nil)))

	got := map[string]int{}
	deadline := time.After(5 * time.Second)
	for len(got) < 4 {
		select {
		case m := <-replies:
			got[m.UUID]++
			m.Ack()
		case m := <-audits:
			got[m.UUID]++
			m.Ack()
		case <-deadline:
			t.Fatalf("got %v, want 4 distinct messages", got)
		}
	}
	select {
	case m := <-replies:
		t.Fatalf("unexpected second reply %s", m.UUID)
	case m := <-audits:
		t.Fatalf("unexpected second audit %s", m.UUID)
	case <-time.After(100 * time.Millisecond):
	}
	assert.Equal(t, map[string]int{
		"charged-charge-o-1": 1, "audit-charge-o-1": 1,
		"charged-charge-o-2": 1, "audit-charge-o-2": 1,
	}, got)
	assert.Equal(t, int64(3), calls.Load(), "handler calls: o-1 once, o-2 twice")
	assert.Equal(t, 1, countRows(t, db, `SELECT COUNT(*) FROM effects WHERE message_id = 'charge-o-1'`))
	assert.Equal(t, 1, countRows(t, db, `SELECT COUNT(*) FROM effects WHERE message_id = 'charge-o-2'`))
}

// The messages a handler returns stay in the handled message's trace:
// they go to the outbox, not through the router, which would otherwise
// give them the handler's context. One that carries trace context keeps it.
func TestHandlerRepliesStayInTheHandledMessagesTrace(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, 1)
	ib := newInbox(t, db, inbox.Config{})
	ob, err := outbox.New(ctx, db, outbox.Config{})
	require.NoError(t, err)
	own := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0xbb, 1}, SpanID: trace.SpanID{0xbb, 2}, TraceFlags: trace.FlagsSampled,
	})
	handler, err := ib.Handler(inbox.HandlerConfig{ConsumerGroup: "payment", Outbox: ob, PublishTopic: "payment.events"},
		func(_ context.Context, msg *message.Message, tx *sql.Tx) ([]*message.Message, error) {
			withOwn := message.NewMessage("reply-own", nil)
			tracing.Inject(trace.ContextWithSpanContext(ctx, own), withOwn)
			return []*message.Message{message.NewMessage("reply", nil), withOwn}, nil
		})
	require.NoError(t, err)

	handled := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0xaa, 1}, SpanID: trace.SpanID{0xaa, 2}, TraceFlags: trace.FlagsSampled,
	})
	msg := message.NewMessage("charge-o-1", nil)
	msg.SetContext(trace.ContextWithSpanContext(ctx, handled))
	_, err = handler(msg)
	require.NoError(t, err)

	queue := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 8}, nil)
	t.Cleanup(func() { require.NoError(t, queue.Close()) })
	replies, err := queue.Subscribe(ctx, "payment.events")
	require.NoError(t, err)
	fwd, err := outbox.NewForwarder(db, queue, outbox.ForwarderConfig{Outbox: ob})
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- fwd.Run(runCtx) }()
	t.Cleanup(func() { stop(); require.NoError(t, <-done) })

	want := map[string]trace.TraceID{"reply": handled.TraceID(), "reply-own": own.TraceID()}
	for range want {
		select {
		case m := <-replies:
			m.Ack()
			got := trace.SpanContextFromContext(tracing.Extract(ctx, m))
			if got.TraceID() != want[m.UUID] {
				t.Errorf("%s: got trace %s, want %s", m.UUID, got.TraceID(), want[m.UUID])
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the replies were not forwarded within 5s")
		}
	}
}

// The handler's context is the one Handle gives its function: the
// message context's values without its cancellation, so that a message
// given up while its unit runs (the subscriber closing) does not cancel the
// unit's statements.
func TestHandlerContextKeepsTheMessagesValuesNotItsCancellation(t *testing.T) {
	db := openDB(t, 1)
	ib := newInbox(t, db, inbox.Config{})
	type key struct{}
	msgCtx, giveUp := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	defer giveUp()
	handler, err := ib.Handler(inbox.HandlerConfig{ConsumerGroup: "payment"},
		func(ctx context.Context, msg *message.Message, tx *sql.Tx) ([]*message.Message, error) {
			giveUp() // the message is given up while its unit runs
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("handler context: %w", err)
			}
			if got := ctx.Value(key{}); got != "v" {
				return nil, fmt.Errorf("handler context value: got %v, want v", got)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO effects (message_id, note) VALUES (?, 'x')`, msg.UUID)
			return nil, err
		})
	require.NoError(t, err)

	msg := message.NewMessage("m1", nil)
	msg.SetContext(msgCtx)
	_, err = handler(msg)
	require.NoError(t, err)
	assert.Equal(t, 1, countRows(t, db, `SELECT COUNT(*) FROM effects WHERE message_id = 'm1'`), "the effect")
	assert.Equal(t, 1, countRows(t, db, `SELECT COUNT(*) FROM inbox_processed`), "the id")
}

func TestHandlerRejectsReturnedMessagesWithoutOutbox(t *testing.T) {
	db := openDB(t, 1)
	ib := newInbox(t, db, inbox.Config{})
	handler, err := ib.Handler(inbox.HandlerConfig{ConsumerGroup: "payment"},
		func(ctx context.Context, msg *message.Message, tx *sql.Tx) ([]*message.Message, error) {
			_, err := tx.ExecContext(ctx, `INSERT INTO effects (message_id, note) VALUES (?, 'x')`, msg.UUID)
			return []*message.Message{message.NewMessage("reply", nil)}, err
		})
	require.NoError(t, err)

	out, err := handler(message.NewMessage("m1", nil))
	require.ErrorContains(t, err, "no outbox")
	assert.Empty(t, out)
	assert.Equal(t, 0, countRows(t, db, `SELECT COUNT(*) FROM effects`), "rolled back")
	assert.Equal(t, 0, countRows(t, db, `SELECT COUNT(*) FROM inbox_processed`), "not recorded")
}

func TestHandlerConfigValidation(t *testing.T) {
	db := openDB(t, 1)
	ib := newInbox(t, db, inbox.Config{})
	ob, err := outbox.New(context.Background(), db, outbox.Config{})
	require.NoError(t, err)
	noop := func(context.Context, *message.Message, *sql.Tx) ([]*message.Message, error) { return nil, nil }
	tests := []struct {
		name    string
		cfg     inbox.HandlerConfig
		h       inbox.TxHandlerFunc
		wantErr bool
	}{
		{name: "group only", cfg: inbox.HandlerConfig{ConsumerGroup: "g"}, h: noop},
		{name: "outbox and topic", cfg: inbox.HandlerConfig{ConsumerGroup: "g", Outbox: ob, PublishTopic: "t"}, h: noop},
		{name: "no group", cfg: inbox.HandlerConfig{}, h: noop, wantErr: true},
		{name: "outbox without topic", cfg: inbox.HandlerConfig{ConsumerGroup: "g", Outbox: ob}, h: noop, wantErr: true},
		{name: "nil handler", cfg: inbox.HandlerConfig{ConsumerGroup: "g"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ib.Handler(tt.cfg, tt.h)
			if tt.wantErr {
				assert.Error(t, err)
			} else {
				assert.NoError(t, err)
			}
		})
	}
}
