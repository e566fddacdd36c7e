package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/orderflow/orderflow/services/order/internal/domain"
)

// Saga steps as shown by the read model: what the order is doing now.
const (
	SagaStepReserveStock     = "reserve_stock"
	SagaStepChargePayment    = "charge_payment"
	SagaStepScheduleShipment = "schedule_shipment"
	SagaStepCompensate       = "compensate"
	SagaStepDone             = "done"
)

// SagaStep names what an order in status s is doing.
func SagaStep(s domain.Status) string {
	switch s {
	case domain.StatusPending:
		return SagaStepReserveStock
	case domain.StatusStockReserved:
		return SagaStepChargePayment
	case domain.StatusPaymentCharged:
		return SagaStepScheduleShipment
	case domain.StatusCancelling:
		return SagaStepCompensate
	}
	return SagaStepDone
}

// OrderView is the read model of one order (the order list projection).
type OrderView struct {
	ID              string         `json:"id"`
	CustomerID      string         `json:"customer_id"`
	Status          domain.Status  `json:"status"`
	Reason          string         `json:"reason,omitempty"`
	Items           []domain.Item  `json:"items"`
	Currency        string         `json:"currency"`
	TotalCents      int64          `json:"total_cents"`
	ShippingAddress domain.Address `json:"shipping_address"`
	SagaStep        string         `json:"saga_step"`
	Awaiting        []domain.Step  `json:"awaiting"`
	Deadline        *time.Time     `json:"deadline,omitempty"`
	PaymentID       string         `json:"payment_id,omitempty"`
	ShipmentID      string         `json:"shipment_id,omitempty"`
	Carrier         string         `json:"carrier,omitempty"`
	TrackingNumber  string         `json:"tracking_number,omitempty"`
	PlacedAt        time.Time      `json:"placed_at"`
	UpdatedAt       time.Time      `json:"updated_at"`
	FinishedAt      *time.Time     `json:"finished_at,omitempty"`
	TraceID         string         `json:"trace_id,omitempty"`
	Version         int            `json:"version"`
}

// ViewMeta is what an order's view takes from its stored events rather
// than from the aggregate's state.
type ViewMeta struct {
	Version    int        // the stream's version the view is at
	TraceID    string     // the trace of the order's first event
	UpdatedAt  time.Time  // when the latest event was recorded
	FinishedAt *time.Time // when the event that ended the order was recorded; nil while it runs
}

// ViewOf is the read model's view of o, as the order_view projection
// stores it (times to the millisecond, in UTC): the one mapping from the
// aggregate to the view, used by the projection and by the answer to a
// placement.
func ViewOf(o *domain.Order, m ViewMeta) OrderView {
	awaiting := o.Awaiting()
	if awaiting == nil {
		awaiting = []domain.Step{}
	}
	v := OrderView{
		ID: o.ID(), CustomerID: o.CustomerID(), Status: o.Status(), Reason: o.Reason(),
		Items: o.Items(), Currency: o.Currency(), TotalCents: o.TotalCents(), ShippingAddress: o.ShippingAddress(),
		SagaStep: SagaStep(o.Status()), Awaiting: awaiting,
		PaymentID: o.PaymentID(), ShipmentID: o.ShipmentID(), Carrier: o.Carrier(), TrackingNumber: o.TrackingNumber(),
		PlacedAt: toMilli(o.PlacedAt()), UpdatedAt: toMilli(m.UpdatedAt),
		TraceID: m.TraceID, Version: m.Version,
	}
	if d := o.Deadline(); !d.IsZero() {
		d = toMilli(d)
		v.Deadline = &d
	}
	if m.FinishedAt != nil {
		f := toMilli(*m.FinishedAt)
		v.FinishedAt = &f
	}
	return v
}

// toMilli is t as the read model stores it: to the millisecond, in UTC.
func toMilli(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

// EventRecord is one stored event of an order's stream.
type EventRecord struct {
	StreamID   string          `json:"stream_id"`
	Version    int             `json:"version"`
	Type       string          `json:"type"`
	Data       json.RawMessage `json:"data"`
	Metadata   EventMetadata   `json:"metadata"`
	RecordedAt time.Time       `json:"recorded_at"`
}

// ListFilter selects a page of the order list, newest first.
type ListFilter struct {
	// Status keeps the orders in that status; "" keeps all.
	Status domain.Status
	// Limit is the page size, 1 to MaxPageSize; 0 means DefaultPageSize
	// unless LimitGiven.
	Limit int
	// LimitGiven says a client gave Limit (GET /orders?limit=): then 0
	// is out of range, not the default.
	LimitGiven bool
	// Cursor continues after the last order of a previous page; "" starts
	// at the newest order.
	Cursor string
	// PlacedSince keeps the orders placed at or after it; zero keeps all.
	// A client that watches its orders end pages back to its oldest
	// unfinished one and no further.
	PlacedSince time.Time
}

// Page sizes of ListOrders.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// ErrInvalidCursor: the cursor of a list request was not made by
// ListOrders.
var ErrInvalidCursor = errors.New("invalid cursor")

// ErrInvalidQuery: a parameter of a list request (status, limit, cursor)
// is out of range. The error is a *QueryError naming each one at fault.
var ErrInvalidQuery = errors.New("invalid query")

// QueryError lists every parameter of a list request at fault, named as
// on the wire ("limit", "cursor"), each with what the client sent. It
// matches ErrInvalidQuery with errors.Is.
type QueryError struct {
	Params []domain.FieldError
}

// Error reads "query parameter limit must be between 1 and 500, got 0",
// the parameters joined by "; ".
func (e *QueryError) Error() string {
	var b strings.Builder
	for i, p := range e.Params {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString("query parameter " + p.Field + " " + p.Problem)
	}
	return b.String()
}

// Is reports whether target is ErrInvalidQuery.
func (e *QueryError) Is(target error) bool { return target == ErrInvalidQuery }

// OrderPage is one page of the order list. NextCursor is "" on the last page.
type OrderPage struct {
	Orders     []OrderView `json:"orders"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

// ReadModel is the order service's read side: the projections and the
// event store, read outside any write transaction.
type ReadModel interface {
	// Order returns one order's view; ErrOrderNotFound if none.
	Order(ctx context.Context, id string) (OrderView, error)
	// Orders returns one page of the list; ErrInvalidCursor for a bad
	// cursor. f is valid and its Limit set.
	Orders(ctx context.Context, f ListFilter) (OrderPage, error)
	// Events returns the order's stream, oldest first; empty if none.
	Events(ctx context.Context, id string) ([]EventRecord, error)
	// StatusCounts returns how many orders are in each status.
	StatusCounts(ctx context.Context) (map[domain.Status]int64, error)
}

// Statuses lists every order status, in saga order.
func Statuses() []domain.Status {
	return []domain.Status{
		domain.StatusPending, domain.StatusStockReserved, domain.StatusPaymentCharged, domain.StatusCancelling,
		domain.StatusCompleted, domain.StatusCancelled, domain.StatusRejected,
	}
}

func validStatus(s domain.Status) bool {
	for _, v := range Statuses() {
		if v == s {
			return true
		}
	}
	return false
}

// GetOrderHandler returns one order.
type GetOrderHandler struct{ rm ReadModel }

// NewGetOrderHandler returns a GetOrderHandler.
func NewGetOrderHandler(rm ReadModel) (GetOrderHandler, error) {
	if rm == nil {
		return GetOrderHandler{}, errors.New("new get order handler: read model is nil")
	}
	return GetOrderHandler{rm: rm}, nil
}

// Handle returns the order with id, or ErrOrderNotFound.
func (h GetOrderHandler) Handle(ctx context.Context, id string) (OrderView, error) {
	if h.rm == nil {
		return OrderView{}, errors.New("get order: handler not initialised")
	}
	v, err := h.rm.Order(ctx, id)
	if err != nil {
		return OrderView{}, fmt.Errorf("get order %s: %w", id, err)
	}
	return v, nil
}

// ListOrdersHandler pages through the order list.
type ListOrdersHandler struct{ rm ReadModel }

// NewListOrdersHandler returns a ListOrdersHandler.
func NewListOrdersHandler(rm ReadModel) (ListOrdersHandler, error) {
	if rm == nil {
		return ListOrdersHandler{}, errors.New("new list orders handler: read model is nil")
	}
	return ListOrdersHandler{rm: rm}, nil
}

// Handle returns one page. A bad status, limit or cursor is a *QueryError
// (ErrInvalidQuery) naming each; a bad cursor also matches
// ErrInvalidCursor.
func (h ListOrdersHandler) Handle(ctx context.Context, f ListFilter) (OrderPage, error) {
	if h.rm == nil {
		return OrderPage{}, errors.New("list orders: handler not initialised")
	}
	var q QueryError
	if f.Status != "" && !validStatus(f.Status) {
		q.Params = append(q.Params, domain.FieldError{Field: "status", Problem: fmt.Sprintf("must be one of %v, got %q", Statuses(), f.Status)})
	}
	if f.Limit < 0 || f.Limit > MaxPageSize || (f.Limit == 0 && f.LimitGiven) {
		q.Params = append(q.Params, domain.FieldError{Field: "limit", Problem: fmt.Sprintf("must be between 1 and %d, got %d", MaxPageSize, f.Limit)})
	}
	if len(q.Params) > 0 {
		return OrderPage{}, &q
	}
	if f.Limit == 0 {
		f.Limit = DefaultPageSize
	}
	p, err := h.rm.Orders(ctx, f)
	if errors.Is(err, ErrInvalidCursor) {
		// Both wrapped: errors.As finds the parameter for the HTTP
		// problem, errors.Is still finds ErrInvalidCursor.
		return OrderPage{}, fmt.Errorf("list orders: %w: %w", err, &QueryError{Params: []domain.FieldError{{
			Field: "cursor", Problem: fmt.Sprintf("must be the next_cursor of a previous page, got %q", f.Cursor),
		}}})
	}
	if err != nil {
		return OrderPage{}, fmt.Errorf("list orders: %w", err)
	}
	return p, nil
}

// OrderEventsHandler returns an order's event history.
type OrderEventsHandler struct{ rm ReadModel }

// NewOrderEventsHandler returns an OrderEventsHandler.
func NewOrderEventsHandler(rm ReadModel) (OrderEventsHandler, error) {
	if rm == nil {
		return OrderEventsHandler{}, errors.New("new order events handler: read model is nil")
	}
	return OrderEventsHandler{rm: rm}, nil
}

// Handle returns the order's events, oldest first, or ErrOrderNotFound.
func (h OrderEventsHandler) Handle(ctx context.Context, id string) ([]EventRecord, error) {
	if h.rm == nil {
		return nil, errors.New("order events: handler not initialised")
	}
	evs, err := h.rm.Events(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("events of order %s: %w", id, err)
	}
	if len(evs) == 0 {
		return nil, fmt.Errorf("events of order %s: %w", id, ErrOrderNotFound)
	}
	return evs, nil
}

// StatusCountsHandler returns how many orders are in each status.
type StatusCountsHandler struct{ rm ReadModel }

// NewStatusCountsHandler returns a StatusCountsHandler.
func NewStatusCountsHandler(rm ReadModel) (StatusCountsHandler, error) {
	if rm == nil {
		return StatusCountsHandler{}, errors.New("new status counts handler: read model is nil")
	}
	return StatusCountsHandler{rm: rm}, nil
}

// Handle returns a count for every status, zeros included.
func (h StatusCountsHandler) Handle(ctx context.Context) (map[domain.Status]int64, error) {
	if h.rm == nil {
		return nil, errors.New("status counts: handler not initialised")
	}
	got, err := h.rm.StatusCounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("status counts: %w", err)
	}
	out := make(map[domain.Status]int64, len(Statuses()))
	for _, s := range Statuses() {
		out[s] = got[s]
	}
	return out, nil
}
