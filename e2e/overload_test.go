package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/e2e/harness"
)

// Scenario 13. Overload: with MAX_OPEN_ORDERS sagas open (payment is down,
// so they wait for their charges), the order service refuses a new order
// with 503, Retry-After and its problem type, and places nothing for it;
// once payment is back and those orders end, the refused request, sent
// again with its Idempotency-Key, is placed once and completes.
func TestOpenOrderLimit(t *testing.T) {
	onQueues(t, []queue{sqliteQueue}, func(t *testing.T, queueURL string) {
		const limit = 3
		sys := start(t, queueURL, harness.Config{
			ServiceEnv: map[string]map[string]string{harness.OrderService: {"MAX_OPEN_ORDERS": strconv.Itoa(limit)}},
		})
		ctx := timeout(t, 2*time.Minute)
		payment := sys.Service(harness.PaymentService)
		if err := payment.Kill(); err != nil {
			t.Fatal(err)
		}
		held := placeAll(t, ctx, sys, orderMix(limit, 13, "SKU-1", "SKU-2"))

		extra := orderMix(1, 14, "SKU-1")[0]
		extra.IdempotencyKey = "over-the-limit"
		body, err := json.Marshal(extra)
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, sys.Service(harness.OrderService).HTTPURL()+"/orders", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", extra.IdempotencyKey)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		problem, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" ||
			!strings.Contains(string(problem), "too-many-open-orders") {
			t.Fatalf("order beyond %d open: got %d, Retry-After %q, %s; want 503 with Retry-After and the too-many-open-orders problem",
				limit, res.StatusCode, res.Header.Get("Retry-After"), problem)
		}
		// Nothing was placed for the refused request: right after the 503,
		// before the request is sent again, the orders are exactly the
		// ones held (the count and the ids).
		_, total, err := sys.Client().Counts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		existing, err := sys.Client().Orders(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, want := ids(existing), ids(held)
		slices.Sort(got)
		slices.Sort(want)
		if total != limit || !slices.Equal(got, want) {
			t.Errorf("orders right after the 503: %d counted, listed %v; want the %d held %v: nothing placed for the refused one", total, got, limit, want)
		}

		if err := payment.Start(ctx); err != nil {
			t.Fatal(err)
		}
		for id, o := range waitTerminal(t, sys, time.Minute, ids(held)...) {
			if o.Status != harness.StatusCompleted {
				t.Errorf("held order %s: %s, want COMPLETED once payment is back", id, o.Status)
			}
		}
		placed, err := sys.Client().PlaceOrder(ctx, extra) // retried while still refused
		if err != nil {
			t.Fatal(err)
		}
		if o := waitTerminal(t, sys, time.Minute, placed.ID)[placed.ID]; o.Status != harness.StatusCompleted {
			t.Errorf("the order refused before: %s, want COMPLETED", o.Status)
		}
		sys.CheckInvariants(t, harness.Expect{Orders: limit + 1, IDs: append(ids(held), placed.ID)})
	})
}
