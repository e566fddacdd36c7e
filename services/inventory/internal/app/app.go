// Package app is inventory's application layer: one command per file, each
// loading state through a transaction, asking the domain, storing the result
// and emitting the answer in that same transaction, plus the read-only
// queries. It knows the message contracts but no infrastructure: the
// transaction (with its inbox and outbox) is the UnitOfWork port.
package app

import (
	"context"
	"time"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/services/inventory/internal/domain"
)

// UnitOfWork runs the effects of one command in one local transaction.
type UnitOfWork interface {
	// Do runs fn in a transaction that commits if fn returns nil. With a
	// messageID, the id is recorded in the same transaction and a message
	// already processed returns duplicate=true without running fn; an
	// empty messageID (an admin request) skips deduplication.
	Do(ctx context.Context, messageID string, fn func(ctx context.Context, tx Tx) error) (duplicate bool, err error)
	// DoRequest runs fn, an admin request's work, in a transaction that
	// commits if fn returns nil. Unlike Do with a message id it is no
	// message handler: the crash_mid_handler fault point, which the queue
	// recovers from by redelivering, does not run.
	DoRequest(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
}

// Tx is the state and the outbox seen through one transaction.
type Tx interface {
	// Reservation returns the order's reservation, or nil if none.
	Reservation(ctx context.Context, orderID string) (*domain.Reservation, error)
	// Stock returns the stock of the given SKUs; unknown SKUs are absent.
	Stock(ctx context.Context, skus []string) (map[string]domain.Stock, error)
	SaveReservation(ctx context.Context, r domain.Reservation) error
	SaveStock(ctx context.Context, s []domain.Stock) error
	// Emit stores m in the outbox; it is published if the transaction
	// commits.
	Emit(ctx context.Context, m contracts.Message) error
	// RestockKey returns the record of a restock's Idempotency-Key, found
	// false when none is kept.
	RestockKey(ctx context.Context, key string) (rk RestockKey, found bool, err error)
	// SaveRestockKey records a restock's Idempotency-Key; one kept
	// already is an error.
	SaveRestockKey(ctx context.Context, rk RestockKey) error
	// PurgeRestockKeys deletes the keys recorded before t.
	PurgeRestockKeys(ctx context.Context, t time.Time) error
}

// ReadModel answers the queries.
type ReadModel interface {
	ListStock(ctx context.Context) ([]domain.Stock, error)
	Reservation(ctx context.Context, orderID string) (*domain.Reservation, error)
	ReservationCounts(ctx context.Context) (map[domain.Status]int, error)
}

// Application is what the ports call.
type Application struct {
	Commands Commands
	Queries  Queries
}

// Commands are inventory's commands.
type Commands struct {
	ReserveStock ReserveStockHandler
	ReleaseStock ReleaseStockHandler
	Restock      RestockHandler
}

// Config is what the service chooses for its application.
type Config struct {
	// OutOfStock returns the SKUs to report out of stock whatever the
	// stock (fault injection); nil means none.
	OutOfStock func() []string
	// RestockKeyRetention is how long a restock's Idempotency-Key is
	// kept: as long as the inbox keeps a message id, the service's dedup
	// retention. Required.
	RestockKeyRetention time.Duration
}

// New wires the application.
func New(uow UnitOfWork, rm ReadModel, cfg Config) (Application, error) {
	reserve, err := NewReserveStockHandler(uow, cfg.OutOfStock)
	if err != nil {
		return Application{}, err
	}
	release, err := NewReleaseStockHandler(uow)
	if err != nil {
		return Application{}, err
	}
	restock, err := NewRestockHandler(uow, cfg.RestockKeyRetention)
	if err != nil {
		return Application{}, err
	}
	queries, err := NewQueries(rm)
	if err != nil {
		return Application{}, err
	}
	return Application{
		Commands: Commands{ReserveStock: reserve, ReleaseStock: release, Restock: restock},
		Queries:  queries,
	}, nil
}

func toItems(lines []domain.Line) []contracts.Item {
	out := make([]contracts.Item, 0, len(lines))
	for _, l := range lines {
		out = append(out, contracts.Item{SKU: l.SKU, Quantity: l.Quantity})
	}
	return out
}

// LinesFromItems converts contract items to domain lines.
func LinesFromItems(items []contracts.Item) []domain.Line {
	out := make([]domain.Line, 0, len(items))
	for _, it := range items {
		out = append(out, domain.Line{SKU: it.SKU, Quantity: it.Quantity})
	}
	return out
}
