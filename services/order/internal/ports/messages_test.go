package ports_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/services/order/internal/ordertest"
	"github.com/orderflow/orderflow/services/order/internal/ports"
)

func encode(t *testing.T, m contracts.Message) *message.Message {
	t.Helper()
	payload, meta, err := contracts.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	msg := message.NewMessage(watermill.NewUUID(), payload)
	for k, v := range meta {
		msg.Metadata.Set(k, v)
	}
	return msg
}

// routes is a router that keeps what was registered, by topic.
type routes map[string]route

type route struct {
	name    string
	handler message.NoPublishHandlerFunc
}

func (r routes) Handle(name, topic string, h message.NoPublishHandlerFunc) { r[topic] = route{name, h} }

// handlers registers h's handlers and returns them by topic.
func handlers(t *testing.T, h *ports.MessageHandlers) routes {
	t.Helper()
	r := routes{}
	h.Register(r)
	for _, topic := range []string{contracts.TopicInventoryEvents, contracts.TopicPaymentEvents, contracts.TopicShippingEvents} {
		if got, want := r[topic].name, "order-"+topic; got != want {
			t.Errorf("handler of %s: got %q, want %q", topic, got, want)
		}
	}
	return r
}

func newRegistry(t *testing.T, exit func(int)) *faults.Registry {
	t.Helper()
	reg, err := faults.New(faults.Config{Flags: faults.ServiceFlags("order"), Exit: exit})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func TestMessageHandlers(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	h, err := ports.NewMessageHandlers(env.App, newRegistry(t, nil), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	handle := handlers(t, h)[contracts.TopicInventoryEvents].handler

	id := env.Place()
	reserved := encode(t, contracts.StockReserved{OrderID: id, Items: []contracts.Item{{SKU: "SKU-1", Quantity: 2}}})
	poison := message.NewMessage(watermill.NewUUID(), []byte("\x00not json"))
	poison.Metadata.Set(contracts.MetadataType, contracts.TypeStockReserved)
	poison.Metadata.Set(contracts.MetadataSchemaVersion, "1")

	tests := []struct {
		name      string
		msg       *message.Message
		permanent bool
		fails     bool
	}{
		{"undecodable", poison, true, true},
		{"unknown type", func() *message.Message {
			m := encode(t, contracts.StockReleased{OrderID: id})
			m.Metadata.Set(contracts.MetadataType, "inventory.Bogus")
			return m
		}(), true, true},
		{"unknown order", encode(t, contracts.StockReleased{OrderID: "nope"}), true, true},
		{"a command, not a reply", encode(t, contracts.ReleaseStock{OrderID: id, Items: []contracts.Item{{SKU: "SKU-1", Quantity: 1}}}), true, true},
		{"a reply", reserved, false, false},
		{"the same reply again (a redelivery: acked, nothing done)", reserved, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := handle(tc.msg)
			if (err != nil) != tc.fails || errors.Is(err, queue.ErrPermanent) != tc.permanent {
				t.Errorf("got %v, want failure %v, permanent %v", err, tc.fails, tc.permanent)
			}
		})
	}
	if got := env.Order(id).Status; got != "STOCK_RESERVED" {
		t.Errorf("status: got %s, want STOCK_RESERVED", got)
	}
	if got := env.EventTypes(id); len(got) != 3 {
		t.Errorf("events after the reply and its redelivery: got %v, want OrderPlaced, StockReserved, PaymentRequested", got)
	}
}

// The crash points stop at the right moment: mid-handler before the commit
// (nothing visible yet), after the commit before the ack (all visible).
func TestCrashPoints(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	id := env.Place()
	var exits []string
	var visibleAtExit []int
	reg := newRegistry(t, func(int) {
		visibleAtExit = append(visibleAtExit, len(env.EventTypes(id)))
	})
	env.Store.BeforeInboxCommit = func(ctx context.Context) {
		if reg.CrashPoint(ctx, faults.CrashMidHandler) {
			exits = append(exits, faults.CrashMidHandler)
		}
	}
	h, err := ports.NewMessageHandlers(env.App, reg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	handle := handlers(t, h)[contracts.TopicInventoryEvents].handler
	for _, f := range []string{faults.CrashMidHandler, faults.CrashAfterCommit} {
		if err := reg.Set(f, "true"); err != nil {
			t.Fatal(err)
		}
	}
	if err := handle(encode(t, contracts.StockReserved{OrderID: id, Items: []contracts.Item{{SKU: "SKU-1", Quantity: 2}}})); err != nil {
		t.Fatal(err)
	}
	// OrderPlaced only, mid-handler; + StockReserved and PaymentRequested after the commit.
	if want := []int{1, 3}; !slices.Equal(visibleAtExit, want) {
		t.Errorf("events visible at each crash point: got %v, want %v", visibleAtExit, want)
	}
	if len(exits) != 1 {
		t.Errorf("mid-handler crash points: got %d, want 1", len(exits))
	}
}

// The handler_latency fault delays a reply's handling until the latency
// has passed or the message's context ends, whichever is first: the
// handler waits for the context, then fails with context.Canceled instead
// of waiting out the latency.
func TestHandlerLatencyWaitsUntilTheMessageContextEnds(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	id := env.Place()
	reg := newRegistry(t, nil)
	h, err := ports.NewMessageHandlers(env.App, reg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	handle := handlers(t, h)[contracts.TopicInventoryEvents].handler
	if err := reg.Set(faults.HandlerLatency, "5m"); err != nil {
		t.Fatal(err)
	}
	msg := encode(t, contracts.StockReserved{OrderID: id, Items: []contracts.Item{{SKU: "SKU-1", Quantity: 2}}})
	const wait = 100 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	time.AfterFunc(wait, cancel)
	msg.SetContext(ctx)
	if err := handle(msg); !errors.Is(err, context.Canceled) {
		t.Errorf("latency cancelled after %s: got %v, want context.Canceled", wait, err)
	}
	if took := time.Since(start); took < wait {
		t.Errorf("handling took %s, want the latency's wait until the context ended (%s)", took, wait)
	}
	if got := env.EventTypes(id); len(got) != 1 {
		t.Errorf("events: got %v, want OrderPlaced alone (the reply was not handled)", got)
	}
}
