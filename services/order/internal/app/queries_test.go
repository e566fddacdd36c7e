package app_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/orderflow/orderflow/services/order/internal/app"
	"github.com/orderflow/orderflow/services/order/internal/domain"
)

// ViewOf is the one mapping from an order to its view (the projection
// stores it, a placement answers with it), so it is checked here field by
// field, not only against itself through the store.
func TestViewOf(t *testing.T) {
	// Not on a millisecond, not in UTC: the view holds milliseconds in UTC.
	placedAt := time.Date(2026, 3, 1, 13, 0, 0, 1_234_567, time.FixedZone("CET", 3600))
	ms := func(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }
	timeouts := domain.Timeouts{Stock: 10 * time.Second, Payment: 10 * time.Second, Shipment: 10 * time.Second, Compensation: 5 * time.Second}
	place := func(t *testing.T) *domain.Order {
		t.Helper()
		o, _, err := domain.PlaceOrder(domain.NewOrder{
			ID: "o-1", CustomerID: "c-1", Currency: "EUR",
			Items:           []domain.Item{{SKU: "SKU-1", Quantity: 2, UnitPriceCents: 1500}},
			ShippingAddress: domain.Address{Name: "c-1", Line1: "1 Rue de Rivoli", City: "Paris", PostalCode: "75001", Country: "FR"},
		}, timeouts, placedAt)
		if err != nil {
			t.Fatalf("place: %v", err)
		}
		return o
	}
	step := func(t *testing.T, _ domain.Decision, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	at := placedAt.Add(3 * time.Second)

	t.Run("placed", func(t *testing.T) {
		o := place(t)
		got := app.ViewOf(o, app.ViewMeta{Version: 1, TraceID: "trace-1", UpdatedAt: placedAt})
		deadline := ms(placedAt.Add(timeouts.Stock))
		want := app.OrderView{
			ID: "o-1", CustomerID: "c-1", Status: domain.StatusPending,
			Items: o.Items(), Currency: "EUR", TotalCents: 3000, ShippingAddress: o.ShippingAddress(),
			SagaStep: app.SagaStepReserveStock, Awaiting: []domain.Step{domain.StepStock}, Deadline: &deadline,
			PlacedAt: ms(placedAt), UpdatedAt: ms(placedAt), TraceID: "trace-1", Version: 1,
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got  %+v\nwant %+v", got, want)
		}
	})
	t.Run("completed", func(t *testing.T) {
		o := place(t)
		d, err := o.OnStockReserved(at)
		step(t, d, err)
		d, err = o.OnPaymentCharged("pay-1", 3000, at)
		step(t, d, err)
		d, err = o.OnShipmentScheduled("ship-1", "DHL", "TRK-1", at)
		step(t, d, err)
		got := app.ViewOf(o, app.ViewMeta{Version: 9, TraceID: "trace-1", UpdatedAt: at, FinishedAt: &at})
		want := app.OrderView{
			ID: "o-1", CustomerID: "c-1", Status: domain.StatusCompleted,
			Items: o.Items(), Currency: "EUR", TotalCents: 3000, ShippingAddress: o.ShippingAddress(),
			SagaStep: app.SagaStep(domain.StatusCompleted), Awaiting: []domain.Step{},
			PaymentID: "pay-1", ShipmentID: "ship-1", Carrier: "DHL", TrackingNumber: "TRK-1",
			PlacedAt: ms(placedAt), UpdatedAt: ms(at), FinishedAt: new(ms(at)), TraceID: "trace-1", Version: 9,
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got  %+v\nwant %+v", got, want)
		}
	})
}
