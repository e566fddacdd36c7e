package domain

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

var testTimeouts = Timeouts{Stock: 10 * time.Second, Payment: 20 * time.Second, Shipment: 30 * time.Second, Compensation: 5 * time.Second}

func validNewOrder() NewOrder {
	return NewOrder{
		ID:         "o-1",
		CustomerID: "c-1",
		Items: []Item{
			{SKU: "SKU-1", Quantity: 2, UnitPriceCents: 1500},
			{SKU: "SKU-2", Quantity: 1, UnitPriceCents: 1999},
		},
		Currency:        "EUR",
		ShippingAddress: Address{Name: "Ada Lovelace", Line1: "12 St James's Square", City: "London", PostalCode: "SW1Y 4JH", Country: "GB"},
	}
}

// place returns a freshly placed order with its first decision cleared.
func place(t *testing.T) *Order {
	t.Helper()
	o, _, err := PlaceOrder(validNewOrder(), testTimeouts, t0)
	if err != nil {
		t.Fatalf("PlaceOrder: got error %v, want nil", err)
	}
	return o
}

func TestPlaceOrder(t *testing.T) {
	o, d, err := PlaceOrder(validNewOrder(), testTimeouts, t0)
	if err != nil {
		t.Fatalf("PlaceOrder: got error %v, want nil", err)
	}
	wantEvent := OrderPlaced{
		OrderID: "o-1", CustomerID: "c-1", Items: validNewOrder().Items, Currency: "EUR", TotalCents: 4999,
		ShippingAddress: validNewOrder().ShippingAddress, Timeouts: testTimeouts, PlacedAt: t0, StockDeadline: t0.Add(10 * time.Second),
	}
	if !reflect.DeepEqual(d.Events, []Event{wantEvent}) {
		t.Errorf("events: got %#v, want %#v", d.Events, []Event{wantEvent})
	}
	wantCmd := Command{Kind: ReserveStock, OrderID: "o-1", Items: validNewOrder().Items}
	if !reflect.DeepEqual(d.Commands, []Command{wantCmd}) {
		t.Errorf("commands: got %#v, want %#v", d.Commands, []Command{wantCmd})
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Status", o.Status(), StatusPending},
		{"TotalCents", o.TotalCents(), int64(4999)},
		{"Deadline", o.Deadline(), t0.Add(10 * time.Second)},
		{"Version", o.Version(), 0},
		{"PendingEvents", o.PendingEvents(), []Event{wantEvent}},
		{"ID", o.ID(), "o-1"},
		{"CustomerID", o.CustomerID(), "c-1"},
		{"Currency", o.Currency(), "EUR"},
		{"PlacedAt", o.PlacedAt(), t0},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	o.ClearPending()
	if got, want := o.Version(), 1; got != want {
		t.Errorf("Version after ClearPending: got %d, want %d", got, want)
	}
	if got := o.PendingEvents(); len(got) != 0 {
		t.Errorf("PendingEvents after ClearPending: got %v, want none", got)
	}
}

func TestPlaceOrderDoesNotAliasInput(t *testing.T) {
	in := validNewOrder()
	o, _, err := PlaceOrder(in, testTimeouts, t0)
	if err != nil {
		t.Fatal(err)
	}
	in.Items[0].Quantity = 99
	o.Items()[1].Quantity = 99
	if got := o.Items()[0].Quantity; got != 2 {
		t.Errorf("Items()[0].Quantity after mutating the input: got %d, want 2", got)
	}
	if got := o.Items()[1].Quantity; got != 1 {
		t.Errorf("Items()[1].Quantity after mutating a returned copy: got %d, want 1", got)
	}
}

func TestPlaceOrderTimeouts(t *testing.T) {
	o, _, err := PlaceOrder(validNewOrder(), Timeouts{Payment: time.Minute}, t0)
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultTimeouts()
	want.Payment = time.Minute
	if got := o.timeouts; got != want {
		t.Errorf("timeouts: got %+v, want %+v", got, want)
	}
	if _, _, err := PlaceOrder(validNewOrder(), Timeouts{Stock: -time.Second}, t0); err == nil || errors.Is(err, ErrInvalidOrder) {
		t.Errorf("negative timeout: got %v, want a configuration error that is not ErrInvalidOrder", err)
	}
}

func TestPlaceOrderValidation(t *testing.T) {
	tests := []struct {
		name   string
		change func(*NewOrder)
		want   []string // fields at fault
	}{
		{"no id", func(n *NewOrder) { n.ID = "" }, []string{"id"}},
		{"blank customer", func(n *NewOrder) { n.CustomerID = "  " }, []string{"customer_id"}},
		{"no items", func(n *NewOrder) { n.Items = nil }, []string{"items"}},
		{"zero quantity", func(n *NewOrder) { n.Items[0].Quantity = 0 }, []string{"items[0].quantity"}},
		{"negative quantity", func(n *NewOrder) { n.Items[1].Quantity = -1 }, []string{"items[1].quantity"}},
		{"no sku", func(n *NewOrder) { n.Items[1].SKU = "" }, []string{"items[1].sku"}},
		{"repeated sku", func(n *NewOrder) { n.Items[1].SKU = "SKU-1" }, []string{"items[1].sku"}},
		{"negative price", func(n *NewOrder) { n.Items[0].UnitPriceCents = -5 }, []string{"items[0].unit_price_cents"}},
		{"free order", func(n *NewOrder) { n.Items[0].UnitPriceCents, n.Items[1].UnitPriceCents = 0, 0 }, []string{"items"}},
		{"total overflows", func(n *NewOrder) { n.Items[0].UnitPriceCents = 1 << 62 }, []string{"items"}},
		{"lower-case currency", func(n *NewOrder) { n.Currency = "eur" }, []string{"currency"}},
		{"no address", func(n *NewOrder) { n.ShippingAddress = Address{} }, []string{"shipping_address.name", "shipping_address.line1", "shipping_address.city", "shipping_address.country"}},
		{"everything wrong", func(n *NewOrder) { *n = NewOrder{Currency: "E", ShippingAddress: validNewOrder().ShippingAddress} }, []string{"id", "customer_id", "items", "currency"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := validNewOrder()
			tc.change(&in)
			o, d, err := PlaceOrder(in, testTimeouts, t0)
			if o != nil || !d.IsEmpty() {
				t.Errorf("PlaceOrder: got order %v and decision %v, want neither", o, d)
			}
			if !errors.Is(err, ErrInvalidOrder) {
				t.Fatalf("PlaceOrder: got error %v, want ErrInvalidOrder", err)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("PlaceOrder: got error of type %T, want *ValidationError", err)
			}
			var got []string
			for _, f := range ve.Fields {
				got = append(got, f.Field)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("fields at fault: got %v, want %v (%v)", got, tc.want, err)
			}
			if verr := in.Validate(); verr == nil || verr.Error() != err.Error() {
				t.Errorf("Validate: got %v, want PlaceOrder's %v", verr, err)
			}
		})
	}
}

// A valid order passes Validate.
func TestValidateAcceptsAValidOrder(t *testing.T) {
	if err := validNewOrder().Validate(); err != nil {
		t.Errorf("Validate: got %v, want nil", err)
	}
}

func TestValidationErrorMessage(t *testing.T) {
	in := validNewOrder()
	in.Items[0].Quantity = 0
	_, _, err := PlaceOrder(in, testTimeouts, t0)
	if got, want := err.Error(), "invalid order: items[0].quantity must be positive, got 0"; got != want {
		t.Errorf("Error(): got %q, want %q", got, want)
	}
}

func TestRehydrateRejectsImpossibleHistories(t *testing.T) {
	placed := place(t).PendingEvents()[0]
	tests := []struct {
		name   string
		events []Event
	}{
		{"empty", nil},
		{"not starting with OrderPlaced", []Event{StockReserved{}, placed}},
		{"placed twice", []Event{placed, StockReserved{}, placed}},
		{"pointer event", []Event{placed, &StockReserved{}}},
		{"unknown step", []Event{placed, CompensationRequested{Steps: []Step{"teleport"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := Rehydrate(tc.events)
			if o != nil || !errors.Is(err, ErrInvalidHistory) {
				t.Errorf("Rehydrate: got (%v, %v), want (nil, ErrInvalidHistory)", o, err)
			}
		})
	}
}

// assertSameState fails unless rehydrating o's whole stream yields o's state.
func assertSameState(t *testing.T, o *Order, stream []Event) {
	t.Helper()
	r, err := Rehydrate(stream)
	if err != nil {
		t.Fatalf("Rehydrate: got error %v, want nil", err)
	}
	if got, want := r.Version(), len(stream); got != want {
		t.Errorf("Rehydrate Version: got %d, want %d", got, want)
	}
	if len(r.PendingEvents()) != 0 {
		t.Errorf("Rehydrate PendingEvents: got %v, want none", r.PendingEvents())
	}
	live, rebuilt := *o, *r
	live.pending, live.version, rebuilt.version = nil, 0, 0
	if !reflect.DeepEqual(rebuilt, live) {
		t.Errorf("Rehydrate state:\n got  %+v\n want %+v", rebuilt, live)
	}
}
