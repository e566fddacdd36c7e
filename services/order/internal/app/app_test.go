package app_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/pkg/catalog"
	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/idempotency"
	"github.com/orderflow/orderflow/services/order/internal/adapters"
	"github.com/orderflow/orderflow/services/order/internal/app"
	"github.com/orderflow/orderflow/services/order/internal/domain"
	"github.com/orderflow/orderflow/services/order/internal/ordertest"
)

func TestPlaceOrderStoresEventAndMessagesInOneTransaction(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	traceID, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	spanID, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled,
	}))
	res, err := env.App.Commands.PlaceOrder.Handle(ctx, app.PlaceOrder{
		CustomerID: "c-1", Items: []app.Line{{SKU: "SKU-1", Quantity: 2}, {SKU: "SKU-2", Quantity: 1}}, RequestID: "req-7",
	})
	if err != nil {
		t.Fatalf("place: %v", err)
	}

	if got, want := env.EventTypes(res.OrderID), []string{"OrderPlaced"}; !slices.Equal(got, want) {
		t.Errorf("events: got %v, want %v", got, want)
	}
	v := env.Order(res.OrderID)
	if v.Status != domain.StatusPending || v.TotalCents != 2*1500+8999 || v.Currency != "EUR" || v.TraceID != traceID.String() {
		t.Errorf("view: got status %s total %d currency %s trace %s, want PENDING %d EUR %s",
			v.Status, v.TotalCents, v.Currency, v.TraceID, 2*1500+8999, traceID)
	}
	if v.SagaStep != app.SagaStepReserveStock || !slices.Equal(v.Awaiting, []domain.Step{domain.StepStock}) {
		t.Errorf("saga: got step %q awaiting %v, want reserve_stock [stock]", v.SagaStep, v.Awaiting)
	}
	if v.Deadline == nil || !v.Deadline.Equal(ordertest.Start.Add(ordertest.StepTimeout)) {
		t.Errorf("deadline: got %v, want %v", v.Deadline, ordertest.Start.Add(ordertest.StepTimeout))
	}

	out := env.Outbox()
	if len(out) != 2 {
		t.Fatalf("outbox: got %d messages, want ReserveStock and OrderPlaced", len(out))
	}
	rs, ok := out[0].Message.(contracts.ReserveStock)
	if !ok || out[0].Topic != contracts.TopicInventoryCommands || len(rs.Items) != 2 {
		t.Errorf("first message: got %s on %s (%+v), want ReserveStock of 2 items on inventory.commands", out[0].Message.MessageType(), out[0].Topic, out[0].Message)
	}
	if _, ok := out[1].Message.(contracts.OrderPlaced); !ok || out[1].Topic != contracts.TopicOrderEvents {
		t.Errorf("second message: got %s on %s, want OrderPlaced on order.events", out[1].Message.MessageType(), out[1].Topic)
	}
	if out[0].UUID == out[1].UUID {
		t.Errorf("message ids: got %q twice, want a new id per message", out[0].UUID)
	}
	for _, m := range out {
		// Exactly this: the contract's metadata, the message's id, the
		// request as the cause, and the placing span as the parent of the
		// forwarder's publish span.
		want := map[string]string{
			contracts.MetadataType:          m.Message.MessageType(),
			contracts.MetadataSchemaVersion: "1",
			contracts.MetadataCorrelationID: res.OrderID,
			contracts.MetadataMessageID:     m.UUID,
			contracts.MetadataCausationID:   "req-7",
			"traceparent":                   "00-" + traceID.String() + "-" + spanID.String() + "-01",
		}
		if !maps.Equal(m.Metadata, want) {
			t.Errorf("%s metadata:\n got %v\nwant %v", m.Message.MessageType(), m.Metadata, want)
		}
	}
}

func TestPlaceOrderValidation(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	tests := []struct {
		name   string
		cmd    app.PlaceOrder
		fields []string
	}{
		{"unknown sku", app.PlaceOrder{CustomerID: "c", Items: []app.Line{{SKU: "NOPE", Quantity: 1}}}, []string{"items[0].sku"}},
		{"negative quantity", app.PlaceOrder{CustomerID: "c", Items: []app.Line{{SKU: "SKU-1", Quantity: -1}}}, []string{"items[0].quantity", "items"}},
		{"quantity over the limit", app.PlaceOrder{CustomerID: "c", Items: []app.Line{{SKU: "SKU-1", Quantity: app.MaxQuantity + 1}}}, []string{"items[0].quantity"}},
		{"no customer", app.PlaceOrder{Items: []app.Line{{SKU: "SKU-1", Quantity: 1}}}, []string{"customer_id"}},
		{"customer id over the limit", app.PlaceOrder{CustomerID: strings.Repeat("c", app.MaxIDLength+1), Items: []app.Line{{SKU: "SKU-1", Quantity: 1}}}, []string{"customer_id"}},
		{"customer id with control characters", app.PlaceOrder{CustomerID: "c\x00\x1b[31m", Items: []app.Line{{SKU: "SKU-1", Quantity: 1}}}, []string{"customer_id"}},
		{"customer id with a right-to-left override", app.PlaceOrder{CustomerID: "c\u202eevil", Items: []app.Line{{SKU: "SKU-1", Quantity: 1}}}, []string{"customer_id"}},
		{"no items", app.PlaceOrder{CustomerID: "c"}, []string{"items"}},
		{"repeated sku", app.PlaceOrder{CustomerID: "c", Items: []app.Line{{SKU: "SKU-1", Quantity: 1}, {SKU: "SKU-1", Quantity: 1}}}, []string{"items[1].sku"}},
		{"bad address", app.PlaceOrder{CustomerID: "c", Items: []app.Line{{SKU: "SKU-1", Quantity: 1}},
			ShippingAddress: &domain.Address{Name: "n", Line1: "l", City: "c", Country: "fr"}}, []string{"shipping_address.country"}},
		{"address fields over the limit or with control characters", app.PlaceOrder{CustomerID: "c", Items: []app.Line{{SKU: "SKU-1", Quantity: 1}},
			ShippingAddress: &domain.Address{Name: strings.Repeat("n", app.MaxTextLength+1), Line1: "l\x1b[2J", Line2: "x\x00", City: "c", PostalCode: strings.Repeat("9", app.MaxTextLength+1), Country: "FR"}},
			[]string{"shipping_address.name", "shipping_address.line1", "shipping_address.line2", "shipping_address.postal_code"}},
		{"bad idempotency key", app.PlaceOrder{CustomerID: "c", Items: []app.Line{{SKU: "SKU-1", Quantity: 1}}, IdempotencyKey: "a\nb"}, []string{"Idempotency-Key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := env.App.Commands.PlaceOrder.Handle(context.Background(), tc.cmd)
			var ve *domain.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("got %v, want a *domain.ValidationError", err)
			}
			var got []string
			for _, f := range ve.Fields {
				got = append(got, f.Field)
			}
			if !slices.Equal(got, tc.fields) {
				t.Errorf("fields: got %v, want %v", got, tc.fields)
			}
		})
	}
	if n := len(env.Outbox()); n != 0 {
		t.Errorf("outbox after refused orders: got %d messages, want 0", n)
	}
}

// The customer id's limit counts characters, as the OpenAPI document's
// maxLength does: 128 two-byte letters are 256 bytes and allowed.
func TestPlaceOrderCountsTheCustomerIDInCharacters(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	cmd := app.PlaceOrder{CustomerID: strings.Repeat("ж", app.MaxIDLength), Items: []app.Line{{SKU: "SKU-1", Quantity: 1}}}
	if _, err := env.App.Commands.PlaceOrder.Handle(context.Background(), cmd); err != nil {
		t.Fatalf("a customer id of %d two-byte letters: got %v, want it placed", app.MaxIDLength, err)
	}
}

func TestPlaceOrderIdempotencyKey(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	ctx := context.Background()
	cmd := app.PlaceOrder{CustomerID: "c-1", Items: []app.Line{{SKU: "SKU-1", Quantity: 1}}, IdempotencyKey: "key-1"}
	first, err := env.App.Commands.PlaceOrder.Handle(ctx, cmd)
	if err != nil || first.Replayed {
		t.Fatalf("first: got %+v, %v, want a new order", first, err)
	}
	again, err := env.App.Commands.PlaceOrder.Handle(ctx, cmd)
	if err != nil || !again.Replayed || again.OrderID != first.OrderID {
		t.Errorf("retry: got %+v, %v, want a replay of %s", again, err, first.OrderID)
	}
	other := cmd
	other.Items = []app.Line{{SKU: "SKU-1", Quantity: 2}}
	if _, err := env.App.Commands.PlaceOrder.Handle(ctx, other); !errors.Is(err, idempotency.ErrKeyReused) {
		t.Errorf("other body: got %v, want idempotency.ErrKeyReused", err)
	}
	if got := len(env.Outbox()); got != 2 {
		t.Errorf("outbox: got %d messages, want 2 (one order)", got)
	}
}

// Each reply makes the saga send the right command, through the outbox, with
// the reply as its cause.
func TestReplyWiring(t *testing.T) {
	reserved := func(id string) contracts.Message {
		return contracts.StockReserved{OrderID: id, Items: []contracts.Item{{SKU: "SKU-1", Quantity: 2}}}
	}
	charged := func(id string) contracts.Message {
		return contracts.PaymentCharged{OrderID: id, PaymentID: "p-1", AmountCents: 3000, Currency: "EUR"}
	}
	tests := []struct {
		name     string
		before   []func(id string) contracts.Message
		reply    func(id string) contracts.Message
		wantMsgs []string
		status   domain.Status
	}{
		{"stock reserved charges payment", nil, reserved,
			[]string{contracts.TypeChargePayment}, domain.StatusStockReserved},
		{"stock failed rejects", nil, func(id string) contracts.Message {
			return contracts.StockReservationFailed{OrderID: id, Reason: "out of stock"}
		}, []string{contracts.TypeOrderRejected}, domain.StatusRejected},
		{"payment charged schedules shipment", []func(string) contracts.Message{reserved}, charged,
			[]string{contracts.TypeScheduleShipment}, domain.StatusPaymentCharged},
		{"payment declined releases stock", []func(string) contracts.Message{reserved}, func(id string) contracts.Message {
			return contracts.PaymentDeclined{OrderID: id, Reason: "insufficient funds"}
		}, []string{contracts.TypeReleaseStock}, domain.StatusCancelling},
		{"shipment scheduled completes", []func(string) contracts.Message{reserved, charged}, func(id string) contracts.Message {
			return contracts.ShipmentScheduled{OrderID: id, ShipmentID: "s-1", TrackingNumber: "T-1"}
		}, []string{contracts.TypeOrderCompleted}, domain.StatusCompleted},
		{"shipment failed refunds and releases", []func(string) contracts.Message{reserved, charged}, func(id string) contracts.Message {
			return contracts.ShipmentFailed{OrderID: id, Reason: "no carrier"}
		}, []string{contracts.TypeRefundPayment, contracts.TypeReleaseStock}, domain.StatusCancelling},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := ordertest.New(t, ordertest.Options{})
			id := env.Place()
			for _, b := range tc.before {
				env.Reply(b(id))
			}
			before := len(env.Outbox())
			msgID := env.Reply(tc.reply(id))
			out := env.Outbox()[before:]
			var got []string
			for _, m := range out {
				got = append(got, m.Message.MessageType())
				if c := m.Metadata[contracts.MetadataCausationID]; c != msgID {
					t.Errorf("%s causation_id: got %q, want the reply's id %q", m.Message.MessageType(), c, msgID)
				}
			}
			if !slices.Equal(got, tc.wantMsgs) {
				t.Errorf("messages: got %v, want %v", got, tc.wantMsgs)
			}
			if s := env.Order(id).Status; s != tc.status {
				t.Errorf("status: got %s, want %s", s, tc.status)
			}
		})
	}
}

func TestDuplicateReplyIsHandledOnce(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	id := env.Place()
	reply := contracts.StockReserved{OrderID: id, Items: []contracts.Item{{SKU: "SKU-1", Quantity: 2}}}
	for i := range 3 {
		if err := env.ReplyWithID("msg-1", reply); err != nil {
			t.Fatalf("delivery %d: %v", i+1, err)
		}
	}
	if got, want := env.OutboxTypes(id), []string{contracts.TypeReserveStock, contracts.TypeOrderPlaced, contracts.TypeChargePayment}; !slices.Equal(got, want) {
		t.Errorf("outbox: got %v, want %v", got, want)
	}
	if got, want := env.EventTypes(id), []string{"OrderPlaced", "StockReserved", "PaymentRequested"}; !slices.Equal(got, want) {
		t.Errorf("events: got %v, want %v", got, want)
	}
	// The same reply under a new message id (a producer's redelivery) is
	// absorbed by the domain instead.
	env.Reply(reply)
	if got := len(env.EventTypes(id)); got != 3 {
		t.Errorf("events after a re-sent reply: got %d, want 3", got)
	}
}

func TestReplyPermanentErrors(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	id := env.Place()
	tests := []struct {
		name string
		msg  contracts.Message
	}{
		{"unknown order", contracts.StockReserved{OrderID: "nope", Items: []contracts.Item{{SKU: "SKU-1", Quantity: 1}}}},
		{"not a reply", contracts.ReserveStock{OrderID: id, Items: []contracts.Item{{SKU: "SKU-1", Quantity: 1}}}},
	}
	for _, tc := range tests {
		err := env.ReplyWithID("m-"+tc.name, tc.msg)
		if err == nil || !app.IsPermanent(err) {
			t.Errorf("%s: got %v, want a permanent error", tc.name, err)
		}
	}
}

func TestCancelOrder(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	ctx := context.Background()
	id := env.Place()
	env.Reply(contracts.StockReserved{OrderID: id, Items: []contracts.Item{{SKU: "SKU-1", Quantity: 2}}})
	if _, err := env.App.Commands.CancelOrder.Handle(ctx, app.CancelOrder{OrderID: id, Reason: "changed my mind"}); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	v := env.Order(id)
	if v.Status != domain.StatusCancelling || v.Reason != "changed my mind" {
		t.Errorf("after cancel: got %s %q, want CANCELLING with the reason", v.Status, v.Reason)
	}
	out := env.OutboxTypes(id)
	if got := out[len(out)-1]; got != contracts.TypeReleaseStock {
		t.Errorf("last message: got %s, want ReleaseStock", got)
	}
	if _, err := env.App.Commands.CancelOrder.Handle(ctx, app.CancelOrder{OrderID: "nope"}); !errors.Is(err, app.ErrOrderNotFound) {
		t.Errorf("unknown order: got %v, want ErrOrderNotFound", err)
	}
	rejected := env.Place()
	env.Reply(contracts.StockReservationFailed{OrderID: rejected, Reason: "none"})
	if _, err := env.App.Commands.CancelOrder.Handle(ctx, app.CancelOrder{OrderID: rejected}); !errors.Is(err, domain.ErrNotCancellable) {
		t.Errorf("rejected order: got %v, want ErrNotCancellable", err)
	}
}

// A cancellation's reason is stored and sent with every compensation: one
// longer than MaxTextLength or with control characters is refused, and the
// order is left as it was; MaxTextLength characters are taken.
func TestCancelOrderRefusesAnUnfitReason(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	ctx := context.Background()
	id := env.Place()
	env.Reply(contracts.StockReserved{OrderID: id, Items: []contracts.Item{{SKU: "SKU-1", Quantity: 2}}})
	sent := len(env.Outbox())
	for _, reason := range []string{strings.Repeat("r", app.MaxTextLength+1), "\x1b[31mred\x00"} {
		_, err := env.App.Commands.CancelOrder.Handle(ctx, app.CancelOrder{OrderID: id, Reason: reason})
		var ve *domain.ValidationError
		if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != "reason" {
			t.Errorf("reason %.20q…: got %v, want a *domain.ValidationError on reason", reason, err)
		}
	}
	if v := env.Order(id); v.Status != domain.StatusStockReserved {
		t.Errorf("after the refused cancellations: got %s, want STOCK_RESERVED", v.Status)
	}
	if n := len(env.Outbox()); n != sent {
		t.Errorf("outbox after the refused cancellations: got %d messages, want %d", n, sent)
	}
	reason := strings.Repeat("ж", app.MaxTextLength)
	if _, err := env.App.Commands.CancelOrder.Handle(ctx, app.CancelOrder{OrderID: id, Reason: reason}); err != nil {
		t.Fatalf("a reason of %d two-byte letters: got %v, want it taken", app.MaxTextLength, err)
	}
	if v := env.Order(id); v.Status != domain.StatusCancelling || v.Reason != reason {
		t.Errorf("after the cancellation: got %s with a reason of %d characters, want CANCELLING with the reason", v.Status, len([]rune(v.Reason)))
	}
}

// A deadline is persisted: a service restarted after it passed fires it.
func TestTimeoutFiresAfterRestart(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	ctx := context.Background()
	id := env.Place()
	env.Reply(contracts.StockReserved{OrderID: id, Items: []contracts.Item{{SKU: "SKU-1", Quantity: 2}}})

	res, err := env.App.Commands.FireTimeouts.Handle(ctx, app.FireTimeouts{})
	if err != nil || res.Due != 0 {
		t.Fatalf("before the deadline: got %+v, %v, want nothing due", res, err)
	}

	env = env.Restart()
	env.Clock.Advance(ordertest.StepTimeout + time.Second)
	res, err = env.App.Commands.FireTimeouts.Handle(ctx, app.FireTimeouts{})
	if err != nil || res.Due != 1 || res.Fired != 1 {
		t.Fatalf("after the deadline: got %+v, %v, want 1 due and fired", res, err)
	}
	v := env.Order(id)
	if v.Status != domain.StatusCancelling || v.SagaStep != app.SagaStepCompensate {
		t.Errorf("status: got %s (%s), want CANCELLING (compensate)", v.Status, v.SagaStep)
	}
	out := env.OutboxTypes(id)
	if got, want := out[len(out)-2:], []string{contracts.TypeRefundPayment, contracts.TypeReleaseStock}; !slices.Equal(got, want) {
		t.Errorf("compensations: got %v, want %v", got, want)
	}
	// Firing again before the compensation deadline does nothing.
	if res, err := env.App.Commands.FireTimeouts.Handle(ctx, app.FireTimeouts{}); err != nil || res.Due != 0 {
		t.Errorf("second round: got %+v, %v, want nothing due", res, err)
	}
	// Confirmations end the saga and clear the deadline.
	env.Reply(contracts.PaymentRefunded{OrderID: id, AmountCents: 0, Currency: "EUR"})
	env.Reply(contracts.StockReleased{OrderID: id})
	v = env.Order(id)
	if v.Status != domain.StatusCancelled || v.Deadline != nil || v.FinishedAt == nil {
		t.Errorf("end: got %s deadline %v finished %v, want CANCELLED, no deadline, a finish time", v.Status, v.Deadline, v.FinishedAt)
	}
	env.Clock.Advance(time.Hour)
	if res, err := env.App.Commands.FireTimeouts.Handle(ctx, app.FireTimeouts{}); err != nil || res.Due != 0 {
		t.Errorf("after the end: got %+v, %v, want nothing due", res, err)
	}
}

func TestTimeoutLoopFiresDueDeadlines(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	id := env.Place()
	env.Clock.Advance(ordertest.StepTimeout)
	loop, err := app.NewTimeoutLoop(env.App.Commands.FireTimeouts, 5*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- loop.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for env.Order(id).Status != domain.StatusCancelling {
		if time.Now().After(deadline) {
			t.Fatalf("status: got %s, want CANCELLING after the loop ran", env.Order(id).Status)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: got %v, want nil", err)
	}
}

// Deadlines that keep failing do not stop a round of the timeout loop,
// however many: the due orders behind them still fire in it, not one batch
// per tick. Ghosts are deadlines of orders that cannot be loaded, due first.
func TestTimeoutLoopGoesOnPastFailingDeadlines(t *testing.T) {
	tests := []struct {
		name   string
		ghosts int
	}{
		{"one in a batch of two", 1},
		{"a whole batch of two", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := ordertest.New(t, ordertest.Options{})
			ids := []string{env.Place(), env.Place(), env.Place()}
			addGhostDeadlines(t, env, tc.ghosts)
			env.Clock.Advance(ordertest.StepTimeout)
			defer runTimeoutLoop(t, env, nil)()
			deadline := time.Now().Add(5 * time.Second)
			for _, id := range ids {
				for env.Order(id).Status != domain.StatusCancelling {
					if time.Now().After(deadline) {
						t.Fatalf("order %s: got %s, want CANCELLING in the loop's first round", id, env.Order(id).Status)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
		})
	}
}

// With MaxOpenOrders open, a new order is refused until one ends; a
// request whose Idempotency-Key placed an order still gets it, and bad
// input is reported as such rather than as overload.
func TestPlaceOrderRefusesNewOrdersAtTheOpenLimit(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	env := ordertest.New(t, ordertest.Options{MaxOpenOrders: 2, App: app.Options{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))}})
	ctx := context.Background()
	place := func(key string) (app.PlaceOrderResult, error) {
		return env.App.Commands.PlaceOrder.Handle(ctx, app.PlaceOrder{
			CustomerID: "c-1", Items: []app.Line{{SKU: "SKU-1", Quantity: 1}}, IdempotencyKey: key,
		})
	}
	first, err := place("k-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := place("k-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := place("k-3"); !errors.Is(err, app.ErrTooManyOpenOrders) {
		t.Fatalf("third order with two open: got %v, want ErrTooManyOpenOrders", err)
	}
	if got, err := place("k-1"); err != nil || got.OrderID != first.OrderID || !got.Replayed {
		t.Errorf("retry of the first order at the limit: got %+v, %v, want its order, replayed", got, err)
	}
	for _, bad := range []struct {
		name string
		cmd  app.PlaceOrder
	}{
		{"unknown SKU", app.PlaceOrder{CustomerID: "c-1", Items: []app.Line{{SKU: "NOPE", Quantity: 1}}}},
		{"no customer", app.PlaceOrder{Items: []app.Line{{SKU: "SKU-1", Quantity: 1}}}},
		{"quantity 0", app.PlaceOrder{CustomerID: "c-1", Items: []app.Line{{SKU: "SKU-1", Quantity: 0}}}},
		{"no items", app.PlaceOrder{CustomerID: "c-1"}},
	} {
		_, err := env.App.Commands.PlaceOrder.Handle(ctx, bad.cmd)
		var invalid *domain.ValidationError
		if !errors.As(err, &invalid) {
			t.Errorf("%s at the limit: got %v, want a validation error", bad.name, err)
		}
	}

	// The first order is rejected (out of stock): one is open again.
	env.Reply(contracts.StockReservationFailed{OrderID: first.OrderID, Reason: "out of stock"})
	if _, err := place("k-3"); err != nil {
		t.Errorf("third order once the first ended: got %v, want it placed", err)
	}
	if _, err := place("k-4"); !errors.Is(err, app.ErrTooManyOpenOrders) {
		t.Errorf("fourth order with two open: got %v, want ErrTooManyOpenOrders", err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	var refused int64 = -1
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == app.MetricOrdersRefused {
				refused = 0
				for _, dp := range sum.DataPoints {
					refused += dp.Value
				}
			}
		}
	}
	if refused != 2 {
		t.Errorf("%s: got %d, want 2 (-1: not recorded)", app.MetricOrdersRefused, refused)
	}
}

// conflictOnce makes the first SaveOrder of every command fail with a
// conflict, as if another writer had appended first.
type conflictOnce struct {
	app.Transactor
	fired atomic.Bool
}

func (c *conflictOnce) InInbox(ctx context.Context, group, id string, fn app.TxFunc) (bool, error) {
	return c.Transactor.InInbox(ctx, group, id, func(ctx context.Context, tx app.Tx) error {
		return fn(ctx, &conflictTx{Tx: tx, c: c})
	})
}

type conflictTx struct {
	app.Tx
	c *conflictOnce
}

func (t *conflictTx) SaveOrder(ctx context.Context, o *domain.Order, meta app.EventMetadata, at time.Time) error {
	if t.c.fired.CompareAndSwap(false, true) {
		return &adapters.ConflictError{StreamID: o.ID(), Expected: o.Version(), Actual: o.Version() + 1}
	}
	return t.Tx.SaveOrder(ctx, o, meta, at)
}

func TestConflictIsRetriedFromAFreshLoad(t *testing.T) {
	var wrapper *conflictOnce
	env := ordertest.New(t, ordertest.Options{WrapTransactor: func(tx app.Transactor) app.Transactor {
		wrapper = &conflictOnce{Transactor: tx}
		return wrapper
	}})
	id := env.Place()
	env.Reply(contracts.StockReserved{OrderID: id, Items: []contracts.Item{{SKU: "SKU-1", Quantity: 2}}})
	if !wrapper.fired.Load() {
		t.Fatal("the conflict was never injected")
	}
	if got, want := env.OutboxTypes(id), []string{contracts.TypeReserveStock, contracts.TypeOrderPlaced, contracts.TypeChargePayment}; !slices.Equal(got, want) {
		t.Errorf("outbox: got %v, want %v (the retry stored ChargePayment once)", got, want)
	}
}

func TestConstructorsRejectNil(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	tests := []struct {
		name string
		err  func() error
	}{
		{"place order", func() error {
			_, err := app.NewPlaceOrderHandler(nil, nil, "EUR", domain.Timeouts{}, app.Options{})
			return err
		}},
		{"cancel order", func() error { _, err := app.NewCancelOrderHandler(nil, app.Options{}); return err }},
		{"handle reply", func() error { _, err := app.NewHandleReplyHandler(nil, app.Options{}); return err }},
		{"fire timeouts", func() error { _, err := app.NewFireTimeoutsHandler(env.Store, nil, app.Options{}); return err }},
		{"get order", func() error { _, err := app.NewGetOrderHandler(nil); return err }},
		{"list orders", func() error { _, err := app.NewListOrdersHandler(nil); return err }},
		{"order events", func() error { _, err := app.NewOrderEventsHandler(nil); return err }},
		{"status counts", func() error { _, err := app.NewStatusCountsHandler(nil); return err }},
		{"timeout loop", func() error { _, err := app.NewTimeoutLoop(app.FireTimeoutsHandler{}, time.Second, nil); return err }},
	}
	for _, tc := range tests {
		if err := tc.err(); err == nil {
			t.Errorf("%s: got nil error, want a refusal", tc.name)
		}
	}
}

// An application that cannot be built leaves no gauge behind on the
// MeterProvider (nothing would unregister it, and it would read a store
// its caller closes).
func TestNewThatFailsRegistersNoGauge(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	reader := sdkmetric.NewManualReader()
	_, err := app.New(app.Config{
		Transactor: env.Store, ReadModel: env.Store, Deadlines: env.Store, Projections: env.Store,
		Catalog: catalog.Default(), Currency: catalog.Currency,
		MaxOpenOrders: -1, // the one thing wrong
		Options:       app.Options{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))},
	})
	if err == nil {
		t.Fatal("New with a negative open-order limit: got nil error, want a refusal")
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collect: %v", err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == app.MetricOrders {
				t.Errorf("after New failed: got %s collected, want no such gauge", app.MetricOrders)
			}
		}
	}
}

// The counters without attributes are reported at 0 before anything has
// happened, so that /metrics lists them from the start.
func TestCountersWithoutAttributesStartAtZero(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	ordertest.New(t, ordertest.Options{App: app.Options{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))}})
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collect: %v", err)
	}
	got := map[string][]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, p := range sum.DataPoints {
					got[m.Name] = append(got[m.Name], p.Value)
				}
			}
		}
	}
	for _, name := range []string{app.MetricOrdersPlaced, app.MetricOrdersRefused, app.MetricTimeoutsFired, app.MetricConflicts} {
		if !slices.Equal(got[name], []int64{0}) {
			t.Errorf("%s before any order: got %v, want [0]", name, got[name])
		}
	}
}

// The orders gauge reports every status's count from the projection at
// each collection, zeros included.
func TestOrdersGaugeCountsEveryStatus(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	env := ordertest.New(t, ordertest.Options{App: app.Options{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))}})
	completed := env.Place()
	env.Reply(contracts.StockReserved{OrderID: completed, Items: []contracts.Item{{SKU: "SKU-1", Quantity: 2}}})
	env.Reply(contracts.PaymentCharged{OrderID: completed, PaymentID: "p-1", AmountCents: 3000, Currency: "EUR"})
	env.Reply(contracts.ShipmentScheduled{OrderID: completed, ShipmentID: "s-1", Carrier: "c", TrackingNumber: "t"})
	env.Place()
	env.Place()

	gauge := func() map[string]int64 {
		t.Helper()
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatalf("collect: %v", err)
		}
		got := map[string]int64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				g, ok := m.Data.(metricdata.Gauge[int64])
				if !ok || m.Name != app.MetricOrders {
					continue
				}
				for _, p := range g.DataPoints {
					status, _ := p.Attributes.Value("order.status")
					got[status.AsString()] = p.Value
				}
			}
		}
		return got
	}
	want := map[string]int64{"PENDING": 2, "STOCK_RESERVED": 0, "PAYMENT_CHARGED": 0, "CANCELLING": 0, "COMPLETED": 1, "CANCELLED": 0, "REJECTED": 0}
	if got := gauge(); !maps.Equal(got, want) {
		t.Errorf("%s: got %v, want %v", app.MetricOrders, got, want)
	}
	// Closed, the application no longer reads its store for the gauge.
	if err := env.App.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := gauge(); len(got) != 0 {
		t.Errorf("%s after Close: got %v, want nothing", app.MetricOrders, got)
	}
}

// PlaceOrder returns the order as GetOrder reads it right after the commit
// (the POST /orders answer is built from it), sub-millisecond clock and
// trace id included; a replay returns no view.
func TestPlaceOrderReturnsTheOrderAsStored(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	env.Clock.Advance(1234567 * time.Nanosecond) // not on a millisecond
	traceID, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	spanID, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled,
	}))
	cmd := app.PlaceOrder{
		CustomerID: "c-1", Items: []app.Line{{SKU: "SKU-1", Quantity: 2}, {SKU: "SKU-2", Quantity: 1}}, IdempotencyKey: "k-1",
	}
	res, err := env.App.Commands.PlaceOrder.Handle(ctx, cmd)
	if err != nil {
		t.Fatalf("place: %v", err)
	}
	if got, want := res.Order, env.Order(res.OrderID); !reflect.DeepEqual(got, want) {
		t.Errorf("placed view:\ngot  %+v\nwant %+v (GetOrder)", got, want)
	}
	replay, err := env.App.Commands.PlaceOrder.Handle(ctx, cmd)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if got := replay; !got.Replayed || got.OrderID != res.OrderID || !reflect.DeepEqual(got.Order, app.OrderView{}) {
		t.Errorf("replay: got %+v, want Replayed, order %s and no view", got, res.OrderID)
	}
}

// logErrors returns the messages of the records at error level, and the
// "failed" attribute of each.
func logErrors(logs *ordertest.Logs) (msgs []string, failed []int64) {
	for _, rec := range logs.Records() {
		if rec.Level < slog.LevelError {
			continue
		}
		msgs = append(msgs, rec.Message)
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "failed" {
				failed = append(failed, a.Value.Int64())
			}
			return true
		})
	}
	return msgs, failed
}

// A timeout round in which many due orders fail (here: deadlines of
// orders that cannot be loaded, over several batches) logs one error with
// their count, not one per order plus one per batch.
func TestTimeoutRoundLogsItsFailuresOnce(t *testing.T) {
	logs := &ordertest.Logs{}
	logger := slog.New(logs)
	env := ordertest.New(t, ordertest.Options{App: app.Options{Logger: logger}})
	const ghosts = 5
	addGhostDeadlines(t, env, ghosts)
	stop := runTimeoutLoop(t, env, logger)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if msgs, _ := logErrors(logs); len(msgs) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // anything the round logged after the first error
	stop()
	msgs, failed := logErrors(logs)
	if want := []string{"timeout round failed"}; !slices.Equal(msgs, want) {
		t.Errorf("error records: got %q, want %q", msgs, want)
	}
	if want := []int64{ghosts}; !slices.Equal(failed, want) {
		t.Errorf("failed: got %v, want %v", failed, want)
	}
}

// addGhostDeadlines adds n deadlines, due long ago, of orders that do not
// exist (they cannot be loaded, so firing them fails).
func addGhostDeadlines(t *testing.T, env *ordertest.Env, n int) {
	t.Helper()
	for i := range n {
		if _, err := env.DB.Writer.Exec(`INSERT INTO order_deadlines (order_id, due_at, trace_id, span_id) VALUES (?, 0, '', '')`,
			fmt.Sprintf("ghost-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
}

// runTimeoutLoop runs a timeout loop of env in batches of two, whose
// first round starts at once and whose next is an hour away, until stop.
func runTimeoutLoop(t *testing.T, env *ordertest.Env, logger *slog.Logger) (stop func()) {
	t.Helper()
	loop, err := app.NewTimeoutLoop(env.App.Commands.FireTimeouts, time.Hour, logger) // one round within the test
	if err != nil {
		t.Fatal(err)
	}
	app.SetTimeoutLoopBatch(loop, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- loop.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: got %v, want nil", err)
		}
	}
}

// CancelOrder returns the order as GetOrder reads it right after the
// commit (the POST /orders/{id}/cancel answer is built from it), the
// trace of the placement included; a cancellation that changes nothing
// returns the order as it stands.
func TestCancelOrderReturnsTheOrderAsStored(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	traceID, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	spanID, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled,
	}))
	placed, err := env.App.Commands.PlaceOrder.Handle(ctx, app.PlaceOrder{CustomerID: "c-1", Items: []app.Line{{SKU: "SKU-1", Quantity: 2}}})
	if err != nil {
		t.Fatalf("place: %v", err)
	}
	id := placed.OrderID
	env.Reply(contracts.StockReserved{OrderID: id, Items: []contracts.Item{{SKU: "SKU-1", Quantity: 2}}})
	tests := []struct {
		name    string
		changes bool // appends events, so the view moves on
	}{
		{"cancel", true},
		{"cancel again (a no-op)", false},
	}
	for _, tc := range tests {
		before := env.Order(id)
		env.Clock.Advance(1234567 * time.Nanosecond) // not on a millisecond
		got, err := env.App.Commands.CancelOrder.Handle(context.Background(), app.CancelOrder{OrderID: id, Reason: "changed my mind"})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if want := env.Order(id); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: view:\ngot  %+v\nwant %+v (GetOrder)", tc.name, got, want)
		}
		if got.Status != domain.StatusCancelling || got.TraceID != traceID.String() {
			t.Errorf("%s: got %s, trace %s; want CANCELLING, the placement's trace %s", tc.name, got.Status, got.TraceID, traceID)
		}
		if changed := got.Version != before.Version; changed != tc.changes {
			t.Errorf("%s: version got %d (was %d), want a change %v", tc.name, got.Version, before.Version, tc.changes)
		}
	}
}
