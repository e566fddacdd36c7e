// Package app is the order service's application layer: one command per
// file (place, cancel, handle a service reply, fire due timeouts, rebuild
// the projections) and the queries of the read model. It runs each
// decision of the domain in one local transaction that appends the order's
// events, updates its projections and deadline, and stores the messages to
// send in the outbox; a reply from another service is also recorded in the
// inbox in that same transaction.
//
// Ports (HTTP, queue handlers) call only this package. The storage it needs
// is described by the small interfaces below and provided by the adapters
// package.
package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/orderflow/orderflow/pkg/catalog"
	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/services/order/internal/domain"
)

// ConsumerGroup is the order service's consumer group on the shared queue and
// the scope of its inbox.
const ConsumerGroup = "order"

// AttributeOrderID is the span attribute naming the order a span is about:
// the spans of this package (an order's cancel, a step's timeout) and the
// order API's request spans, so that Jaeger's tag search finds them all.
const AttributeOrderID = attribute.Key("order.id")

// Errors of the application layer (with ErrInvalidQuery and
// ErrInvalidCursor of the queries, and idempotency.ErrKeyReused: an
// Idempotency-Key already placed an order from a different request body).
// Ports map them to statuses with errors.Is; domain errors
// (domain.ErrInvalidOrder, domain.ErrNotCancellable,
// domain.ErrInvalidReply) pass through unchanged.
var (
	// ErrOrderNotFound: no order has this id.
	ErrOrderNotFound = errors.New("order not found")
	// ErrConflict: the order's stream changed between load and append
	// (optimistic concurrency). Commands retry it a few times before
	// returning it.
	ErrConflict = errors.New("concurrent modification of the order")
	// ErrTooManyOpenOrders: placing the order would take the number of
	// orders whose saga has not ended past the limit (Config.MaxOpenOrders).
	// The request may be sent again later.
	ErrTooManyOpenOrders = errors.New("too many open orders")
	// ErrStorageUnavailable: the order database cannot be used now (disk
	// full, I/O error, locked past the busy timeout, cannot be opened, no
	// file descriptor left). The adapters mark such errors with it; the
	// request may be sent again later.
	ErrStorageUnavailable = errors.New("storage unavailable")
)

// EventMetadata is stored with every event appended by one decision: what
// caused it and the trace it belongs to.
type EventMetadata struct {
	// CorrelationID is the order id.
	CorrelationID string `json:"correlation_id"`
	// CausationID is the id of what caused the decision: the message id of
	// a service reply, the HTTP request id, or a timeout id.
	CausationID string `json:"causation_id,omitempty"`
	// Cause names the kind of input: "http", a message type such as
	// "inventory.StockReserved", or "timeout".
	Cause string `json:"cause,omitempty"`
	// TraceID and SpanID identify the span that made the decision (hex).
	TraceID string `json:"trace_id,omitempty"`
	SpanID  string `json:"span_id,omitempty"`
	// TraceFlags are that span's W3C trace flags (hex, "01" when
	// sampled). Spans the service starts later in the order's trace (a
	// timeout, a cancellation) take them over, so an order whose trace was
	// not sampled stays unsampled. Empty (events recorded before the field
	// existed) counts as sampled.
	TraceFlags string `json:"trace_flags,omitempty"`
}

// IdempotencyRecord maps an Idempotency-Key to the order it placed.
type IdempotencyRecord struct {
	Key         string
	RequestHash string
	OrderID     string
	CreatedAt   time.Time
}

// Tx is one local transaction of the order database. Its methods must be
// called from the goroutine running the transaction function, and not after
// it returns.
type Tx interface {
	// LoadOrder rehydrates an order from its stream; ErrOrderNotFound if
	// the stream is empty.
	LoadOrder(ctx context.Context, id string) (*domain.Order, error)
	// LatestMetadata returns the metadata of the latest event of the
	// order's stream (whose trace context is the order's latest decision);
	// ErrOrderNotFound if the stream is empty.
	LatestMetadata(ctx context.Context, id string) (EventMetadata, error)
	// SaveOrder appends o's pending events at versions Version()+1, …,
	// with meta, recorded at at; updates the projections and the deadline
	// index; then clears o's pending events. An append that finds the
	// stream moved on returns an error matching ErrConflict.
	SaveOrder(ctx context.Context, o *domain.Order, meta EventMetadata, at time.Time) error
	// Emit stores m in the outbox, to be forwarded to m's topic on the
	// shared queue if and only if the transaction commits. The message
	// gets a new id, the contract metadata, causationID (what caused the
	// decision, as EventMetadata.CausationID; "" for none) and the trace
	// context of ctx.
	Emit(ctx context.Context, m contracts.Message, causationID string) error
	// IdempotencyKey returns the record of key, found false if none.
	IdempotencyKey(ctx context.Context, key string) (rec IdempotencyRecord, found bool, err error)
	// SaveIdempotencyKey records rec; a second record for the same key is
	// an error.
	SaveIdempotencyKey(ctx context.Context, rec IdempotencyRecord) error
	// OpenOrders counts the orders whose saga has not ended (not in a
	// terminal status).
	OpenOrders(ctx context.Context) (int64, error)
	// OrderView returns the order's view as this transaction sees it (the
	// projection SaveOrder updates); ErrOrderNotFound if there is none.
	OrderView(ctx context.Context, id string) (OrderView, error)
}

// TxFunc is the work of one transaction: committed when it returns nil,
// rolled back otherwise.
type TxFunc func(ctx context.Context, tx Tx) error

// Transactor runs transactions of the order database.
type Transactor interface {
	// InTx runs fn in one transaction.
	InTx(ctx context.Context, fn TxFunc) error
	// InInbox runs fn in one transaction that also records messageID as
	// processed by group; if it was already recorded, fn is not run and
	// duplicate is true.
	InInbox(ctx context.Context, group, messageID string, fn TxFunc) (duplicate bool, err error)
}

// Deadline is an order's next step deadline, from the persisted deadline
// index, with the trace context of the order's latest decision.
type Deadline struct {
	OrderID    string
	Due        time.Time
	TraceID    string
	SpanID     string
	TraceFlags string // as EventMetadata.TraceFlags
}

// DeadlinePosition is a place in the deadline index's order: by Due, then
// OrderID. The zero position is before every deadline.
type DeadlinePosition struct {
	Due     time.Time
	OrderID string
}

// DeadlineIndex lists the orders whose deadline has passed.
type DeadlineIndex interface {
	// DueDeadlines returns up to limit deadlines due at or before now
	// that come after the position after, earliest first (by Due, then
	// OrderID).
	DueDeadlines(ctx context.Context, now time.Time, after DeadlinePosition, limit int) ([]Deadline, error)
}

// Application is what the ports use: the commands and the queries.
type Application struct {
	Commands Commands
	Queries  Queries

	// statusGauge is the orders gauge's callback on the MeterProvider,
	// which reads the database: Close removes it.
	statusGauge metric.Registration
}

// Close removes what the application registered on the MeterProvider (the
// orders gauge's callback, which reads the store): call it before closing
// the store. Commands and queries keep working.
func (a *Application) Close() error {
	if a.statusGauge == nil {
		return nil
	}
	err := a.statusGauge.Unregister()
	a.statusGauge = nil
	return err
}

// Commands change orders.
type Commands struct {
	PlaceOrder         PlaceOrderHandler
	CancelOrder        CancelOrderHandler
	HandleReply        HandleReplyHandler
	FireTimeouts       FireTimeoutsHandler
	RebuildProjections RebuildProjectionsHandler
}

// Queries read the projections and the event store.
type Queries struct {
	GetOrder     GetOrderHandler
	ListOrders   ListOrdersHandler
	OrderEvents  OrderEventsHandler
	StatusCounts StatusCountsHandler
}

// Config is what New needs to build the Application.
type Config struct {
	Transactor Transactor
	ReadModel  ReadModel
	Deadlines  DeadlineIndex
	// Projections rebuilds the projections ReadModel reads.
	Projections ProjectionRebuilder
	// Catalog prices the orders, in Currency.
	Catalog  catalog.Catalog
	Currency string
	// Timeouts are the saga's step deadlines for new orders; zero fields
	// take domain.DefaultTimeouts.
	Timeouts domain.Timeouts
	// MaxOpenOrders, when positive, refuses a new order while that many
	// orders are open (ErrTooManyOpenOrders), so that an overloaded system
	// sheds new work instead of queueing it past the step deadlines,
	// where every timeout adds compensations to the backlog. 0: no limit
	// (this Config has no defaults; service.Config, which has, turns the
	// limit off with NoOpenOrderLimit); negative is an error.
	MaxOpenOrders int
	Options       Options
}

// New builds every command and query handler.
func New(cfg Config) (*Application, error) {
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var a Application
	var err error
	a.Commands.PlaceOrder, err = NewPlaceOrderHandler(cfg.Transactor, cfg.Catalog, cfg.Currency, cfg.Timeouts, cfg.Options)
	check(err)
	if cfg.MaxOpenOrders < 0 {
		check(errors.New("max open orders must not be negative"))
	}
	a.Commands.PlaceOrder.maxOpen = cfg.MaxOpenOrders
	a.Commands.CancelOrder, err = NewCancelOrderHandler(cfg.Transactor, cfg.Options)
	check(err)
	a.Commands.HandleReply, err = NewHandleReplyHandler(cfg.Transactor, cfg.Options)
	check(err)
	a.Commands.FireTimeouts, err = NewFireTimeoutsHandler(cfg.Transactor, cfg.Deadlines, cfg.Options)
	check(err)
	a.Commands.RebuildProjections, err = NewRebuildProjectionsHandler(cfg.Projections)
	check(err)
	a.Queries.GetOrder, err = NewGetOrderHandler(cfg.ReadModel)
	check(err)
	a.Queries.ListOrders, err = NewListOrdersHandler(cfg.ReadModel)
	check(err)
	a.Queries.OrderEvents, err = NewOrderEventsHandler(cfg.ReadModel)
	check(err)
	a.Queries.StatusCounts, err = NewStatusCountsHandler(cfg.ReadModel)
	check(err)
	if len(errs) == 0 { // else nothing would unregister the gauge
		opts := cfg.Options
		opts.setDefaults()
		a.statusGauge, err = registerStatusGauge(opts.MeterProvider, a.Queries.StatusCounts)
		check(err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("new application: %w", errors.Join(errs...))
	}
	return &a, nil
}
