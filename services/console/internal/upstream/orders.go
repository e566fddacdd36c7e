package upstream

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Order statuses, in saga order, as the order API reports them.
const (
	StatusPending        = "PENDING"
	StatusStockReserved  = "STOCK_RESERVED"
	StatusPaymentCharged = "PAYMENT_CHARGED"
	StatusCancelling     = "CANCELLING"
	StatusCompleted      = "COMPLETED"
	StatusCancelled      = "CANCELLED"
	StatusRejected       = "REJECTED"
)

// Statuses lists every order status, in saga order.
func Statuses() []string {
	return []string{StatusPending, StatusStockReserved, StatusPaymentCharged, StatusCancelling,
		StatusCompleted, StatusCancelled, StatusRejected}
}

// IsTerminal reports a status after which the order no longer changes.
func IsTerminal(status string) bool {
	return status == StatusCompleted || status == StatusCancelled || status == StatusRejected
}

// IsCancellable reports whether the order API accepts a cancellation of an
// order in status: until the shipment is scheduled.
func IsCancellable(status string) bool {
	return status == StatusPending || status == StatusStockReserved || status == StatusPaymentCharged
}

// Item is one line of an order.
type Item struct {
	SKU            string `json:"sku"`
	Quantity       int    `json:"quantity"`
	UnitPriceCents int64  `json:"unit_price_cents"`
}

// Order is an order as GET /orders/{id} shows it.
type Order struct {
	ID             string     `json:"id"`
	CustomerID     string     `json:"customer_id"`
	Status         string     `json:"status"`
	Reason         string     `json:"reason"`
	Items          []Item     `json:"items"`
	Currency       string     `json:"currency"`
	TotalCents     int64      `json:"total_cents"`
	SagaStep       string     `json:"saga_step"`
	Awaiting       []string   `json:"awaiting"`
	Deadline       *time.Time `json:"deadline"`
	PaymentID      string     `json:"payment_id"`
	ShipmentID     string     `json:"shipment_id"`
	Carrier        string     `json:"carrier"`
	TrackingNumber string     `json:"tracking_number"`
	PlacedAt       time.Time  `json:"placed_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	FinishedAt     *time.Time `json:"finished_at"`
	TraceID        string     `json:"trace_id"`
	Version        int        `json:"version"`
}

// Event is one event of an order's stream.
type Event struct {
	Version    int             `json:"version"`
	Type       string          `json:"type"`
	Data       json.RawMessage `json:"data"`
	Metadata   EventMetadata   `json:"metadata"`
	RecordedAt time.Time       `json:"recorded_at"`
}

// EventMetadata says what caused an event.
type EventMetadata struct {
	CausationID string `json:"causation_id"`
	Cause       string `json:"cause"`
	TraceID     string `json:"trace_id"`
}

// OrderPage is one page of the order list, newest first.
type OrderPage struct {
	Orders     []Order `json:"orders"`
	NextCursor string  `json:"next_cursor"`
}

// Counts is how many orders are in each status.
type Counts struct {
	Counts map[string]int64 `json:"counts"`
	Total  int64            `json:"total"`
}

// Line is one line of an order to place.
type Line struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// PlaceOrder is the body of POST /orders.
type PlaceOrder struct {
	CustomerID string `json:"customer_id"`
	Items      []Line `json:"items"`
}

// Orders is a client of the order service's public API.
type Orders struct{ c *Client }

// NewOrders returns a client of the order API at c's address.
func NewOrders(c *Client) *Orders { return &Orders{c: c} }

// Client is the underlying HTTP client.
func (o *Orders) Client() *Client { return o.c }

// Place places an order. idempotencyKey, when not empty, makes a retry
// of the same request return the same order.
func (o *Orders) Place(ctx context.Context, p PlaceOrder, idempotencyKey string) (Order, error) {
	h := http.Header{}
	if idempotencyKey != "" {
		h.Set("Idempotency-Key", idempotencyKey)
	}
	var out Order
	err := o.c.do(ctx, request{method: http.MethodPost, path: "/orders", body: p, header: h}, &out)
	return out, err
}

// Get returns one order.
func (o *Orders) Get(ctx context.Context, id string) (Order, error) {
	var out Order
	err := o.c.do(ctx, request{method: http.MethodGet, path: "/orders/" + url.PathEscape(id)}, &out)
	return out, err
}

// Events returns the order's events, oldest first.
func (o *Orders) Events(ctx context.Context, id string) ([]Event, error) {
	var out struct {
		Events []Event `json:"events"`
	}
	err := o.c.do(ctx, request{method: http.MethodGet, path: "/orders/" + url.PathEscape(id) + "/events"}, &out)
	return out.Events, err
}

// List returns a page of orders; status "" keeps all, limit 0 means the
// API's default.
func (o *Orders) List(ctx context.Context, status string, limit int, cursor string) (OrderPage, error) {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var out OrderPage
	err := o.c.do(ctx, request{method: http.MethodGet, path: "/orders", query: q}, &out)
	return out, err
}

// Counts returns how many orders are in each status.
func (o *Orders) Counts(ctx context.Context) (Counts, error) {
	var out Counts
	err := o.c.do(ctx, request{method: http.MethodGet, path: "/orders/counts"}, &out)
	return out, err
}

// Cancel asks the order service to cancel the order.
func (o *Orders) Cancel(ctx context.Context, id, reason string) (Order, error) {
	body := struct {
		Reason string `json:"reason,omitempty"`
	}{Reason: reason}
	var out Order
	err := o.c.do(ctx, request{method: http.MethodPost, path: "/orders/" + url.PathEscape(id) + "/cancel", body: body}, &out)
	return out, err
}
