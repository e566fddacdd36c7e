package adapters_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/services/order/internal/adapters"
	"github.com/orderflow/orderflow/services/order/internal/app"
	"github.com/orderflow/orderflow/services/order/internal/domain"
	"github.com/orderflow/orderflow/services/order/internal/ordertest"
)

// driveOrders places orders that end in every status and returns their ids.
func driveOrders(t *testing.T, env *ordertest.Env) map[string]domain.Status {
	t.Helper()
	ctx := context.Background()
	items := []contracts.Item{{SKU: "SKU-1", Quantity: 2}}
	want := map[string]domain.Status{}
	place := func(s domain.Status) string {
		id := env.Place()
		want[id] = s
		env.Clock.Advance(time.Second)
		return id
	}

	place(domain.StatusPending)
	id := place(domain.StatusStockReserved)
	env.Reply(contracts.StockReserved{OrderID: id, Items: items})

	id = place(domain.StatusPaymentCharged)
	env.Reply(contracts.StockReserved{OrderID: id, Items: items})
	env.Reply(contracts.PaymentCharged{OrderID: id, PaymentID: "p-" + id, AmountCents: 3000, Currency: "EUR"})

	id = place(domain.StatusCompleted)
	env.Reply(contracts.StockReserved{OrderID: id, Items: items})
	env.Reply(contracts.PaymentCharged{OrderID: id, PaymentID: "p-" + id, AmountCents: 3000, Currency: "EUR"})
	env.Reply(contracts.ShipmentScheduled{OrderID: id, ShipmentID: "s-" + id, Carrier: "DHL", TrackingNumber: "T"})

	id = place(domain.StatusRejected)
	env.Reply(contracts.StockReservationFailed{OrderID: id, Reason: "out of stock"})

	id = place(domain.StatusCancelled)
	env.Reply(contracts.StockReserved{OrderID: id, Items: items})
	env.Reply(contracts.PaymentDeclined{OrderID: id, Reason: "declined"})
	env.Reply(contracts.StockReleased{OrderID: id, Items: items})

	id = place(domain.StatusCancelling)
	if _, err := env.App.Commands.CancelOrder.Handle(ctx, app.CancelOrder{OrderID: id}); err != nil {
		t.Fatal(err)
	}
	return want
}

func TestProjectionsRebuildEqualsLive(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	want := driveOrders(t, env)
	for id, st := range want {
		if got := env.Order(id).Status; got != st {
			t.Errorf("order %s: got %s, want %s", id, got, st)
		}
	}
	tables := []string{"order_view", "order_status_counts", "order_deadlines"}
	live := map[string][]string{}
	for _, tb := range tables {
		live[tb] = env.Dump(tb)
	}
	if len(live["order_view"]) != len(want) {
		t.Fatalf("order_view: got %d rows, want %d", len(live["order_view"]), len(want))
	}

	// Damage the projections, then rebuild them from the events.
	if _, err := env.DB.Writer.Exec(`UPDATE order_view SET status = 'BOGUS'; DELETE FROM order_status_counts; DELETE FROM order_deadlines`); err != nil {
		t.Fatal(err)
	}
	n, err := adapters.RebuildProjections(context.Background(), env.DB)
	if err != nil || n != len(want) {
		t.Fatalf("rebuild: got %d, %v, want %d orders", n, err, len(want))
	}
	for _, tb := range tables {
		if got := env.Dump(tb); !slices.Equal(got, live[tb]) {
			t.Errorf("%s after rebuild:\n got %q\nwant %q", tb, got, live[tb])
		}
	}
	counts, err := env.App.Queries.StatusCounts.Handle(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range app.Statuses() {
		if counts[s] != 1 {
			t.Errorf("count of %s: got %d, want 1", s, counts[s])
		}
	}
}

func TestListOrdersPagination(t *testing.T) {
	env := ordertest.New(t, ordertest.Options{})
	want := driveOrders(t, env)
	ctx := context.Background()

	// Newest first, three per page, all pages together cover every order once.
	var (
		seen   []string
		cursor string
		pages  int
	)
	for {
		page, err := env.App.Queries.ListOrders.Handle(ctx, app.ListFilter{Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatalf("page %d: %v", pages+1, err)
		}
		pages++
		for _, o := range page.Orders {
			seen = append(seen, o.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if pages != 3 || len(seen) != len(want) {
		t.Errorf("got %d pages and %d orders, want 3 and %d", pages, len(seen), len(want))
	}
	for i := 1; i < len(seen); i++ {
		if env.Order(seen[i-1]).PlacedAt.Before(env.Order(seen[i]).PlacedAt) {
			t.Errorf("orders %d and %d are not newest first", i-1, i)
		}
	}

	page, err := env.App.Queries.ListOrders.Handle(ctx, app.ListFilter{Status: domain.StatusCompleted})
	if err != nil || len(page.Orders) != 1 || page.Orders[0].Status != domain.StatusCompleted || page.NextCursor != "" {
		t.Errorf("status filter: got %+v, %v, want the one COMPLETED order", page, err)
	}

	// PlacedSince keeps the orders placed at or after it, to the
	// nanosecond although times are stored in milliseconds.
	for _, since := range []time.Time{
		env.Order(seen[len(seen)/2]).PlacedAt,
		env.Order(seen[len(seen)/2]).PlacedAt.Add(time.Nanosecond),
		env.Order(seen[0]).PlacedAt.Add(time.Millisecond),
	} {
		var want []string
		for _, id := range seen {
			if !env.Order(id).PlacedAt.Before(since) {
				want = append(want, id)
			}
		}
		page, err := env.App.Queries.ListOrders.Handle(ctx, app.ListFilter{PlacedSince: since, Limit: app.MaxPageSize})
		var got []string
		for _, o := range page.Orders {
			got = append(got, o.ID)
		}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("placed since %v: got %v, %v, want %v", since, got, err, want)
		}
	}

	bad := []struct {
		name  string
		f     app.ListFilter
		field string
		want  string // the *app.QueryError's message
	}{
		{"unknown status", app.ListFilter{Status: "NOPE"}, "status",
			`query parameter status must be one of [PENDING STOCK_RESERVED PAYMENT_CHARGED CANCELLING COMPLETED CANCELLED REJECTED], got "NOPE"`},
		{"limit too large", app.ListFilter{Limit: app.MaxPageSize + 1}, "limit", "query parameter limit must be between 1 and 500, got 501"},
		{"negative limit", app.ListFilter{Limit: -1}, "limit", "query parameter limit must be between 1 and 500, got -1"},
		{"limit of zero given", app.ListFilter{Limit: 0, LimitGiven: true}, "limit", "query parameter limit must be between 1 and 500, got 0"},
		{"bad cursor", app.ListFilter{Cursor: "%%%"}, "cursor", `query parameter cursor must be the next_cursor of a previous page, got "%%%"`},
	}
	for _, tc := range bad {
		_, err := env.App.Queries.ListOrders.Handle(ctx, tc.f)
		var qe *app.QueryError
		if !errors.As(err, &qe) || qe.Params[0].Field != tc.field {
			t.Errorf("%s: got %v, want a query error on %q", tc.name, err, tc.field)
		} else if got := qe.Error(); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
		if !errors.Is(err, app.ErrInvalidQuery) || errors.Is(err, domain.ErrInvalidOrder) {
			t.Errorf("%s: got %v, want it to match ErrInvalidQuery and not ErrInvalidOrder", tc.name, err)
		}
		// Handle's doc promises that a bad cursor, and only it, matches
		// ErrInvalidCursor.
		if got, want := errors.Is(err, app.ErrInvalidCursor), tc.field == "cursor"; got != want {
			t.Errorf("%s: errors.Is(%v, ErrInvalidCursor): got %v, want %v", tc.name, err, got, want)
		}
	}
}

// A reply brings the order's view row and the status counts to the
// order's new status, also when the row was damaged (at another status,
// or missing).
func TestAReplyUpdatesAViewRowThatIsNotWhereTheStreamSaysItIs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage string
	}{
		{"row at its status", ``},
		{"row at another status", `UPDATE order_view SET status = 'BOGUS' WHERE order_id = ?`},
		{"row missing", `DELETE FROM order_view WHERE order_id = ?`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := ordertest.New(t, ordertest.Options{})
			id := env.Place()
			if tc.damage != "" {
				if _, err := env.DB.Writer.Exec(tc.damage, id); err != nil {
					t.Fatal(err)
				}
			}
			env.Reply(contracts.StockReserved{OrderID: id, Items: []contracts.Item{{SKU: "SKU-1", Quantity: 2}}})
			v := env.Order(id)
			events := len(env.EventTypes(id))
			if v.Status != domain.StatusStockReserved || v.Version != events {
				t.Errorf("view after the reply: got status %s at version %d, want %s at %d", v.Status, v.Version, domain.StatusStockReserved, events)
			}
			counts, err := env.App.Queries.StatusCounts.Handle(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := counts[domain.StatusStockReserved]; got != 1 {
				t.Errorf("count of %s: got %d, want 1", domain.StatusStockReserved, got)
			}
			if got := counts[domain.StatusPending]; tc.damage == "" && got != 0 {
				t.Errorf("count of %s: got %d, want 0", domain.StatusPending, got)
			}
		})
	}
}
