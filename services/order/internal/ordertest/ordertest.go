// Package ordertest builds an order application on a real SQLite database in
// a test's temporary directory, with a controllable clock, and reads back
// what the application stored in its outbox. It is for tests only.
package ordertest

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/orderflow/orderflow/pkg/catalog"
	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/queue/inbox"
	"github.com/orderflow/orderflow/queue/outbox"
	"github.com/orderflow/orderflow/services/order/internal/adapters"
	"github.com/orderflow/orderflow/services/order/internal/app"
	"github.com/orderflow/orderflow/services/order/internal/domain"
)

// Start is the clock's initial time.
var Start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// StepTimeout is the saga's step timeout in an Env.
const StepTimeout = 10 * time.Second

// Clock is a manual clock, safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Options tune New. Zero values take the defaults.
type Options struct {
	// Path is the database file; default a new file in t.TempDir().
	Path string
	// Clock defaults to NewClock(Start).
	Clock *Clock
	// WrapTransactor, when set, decorates the store as the app's
	// Transactor (to inject failures).
	WrapTransactor func(app.Transactor) app.Transactor
	// App overrides app options (Clock is always the Env's).
	App app.Options
	// MaxOpenOrders is app.Config's; default 0, no limit.
	MaxOpenOrders int
}

// Env is an order application on a real database.
type Env struct {
	T     testing.TB
	Path  string
	DB    *adapters.DB
	Store *adapters.Store
	App   *app.Application
	Clock *Clock
	opts  Options
}

// New builds an Env; its database is closed at the end of the test.
func New(t testing.TB, opts Options) *Env {
	t.Helper()
	if opts.Path == "" {
		opts.Path = filepath.Join(t.TempDir(), "order.db")
	}
	if opts.Clock == nil {
		opts.Clock = NewClock(Start)
	}
	ctx := context.Background()
	db, err := adapters.OpenDB(ctx, opts.Path, adapters.DBConfig{})
	if err != nil {
		t.Fatalf("open db: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ob, err := outbox.New(ctx, db.Writer, outbox.Config{})
	if err != nil {
		t.Fatalf("outbox: %v", err)
	}
	ib, err := inbox.New(ctx, db.Writer, inbox.Config{})
	if err != nil {
		t.Fatalf("inbox: %v", err)
	}
	store, err := adapters.NewStore(db, ob, ib, nil)
	if err != nil {
		t.Fatalf("store: %v", err)
	}
	var tx app.Transactor = store
	if opts.WrapTransactor != nil {
		tx = opts.WrapTransactor(store)
	}
	ao := opts.App
	ao.Clock = opts.Clock.Now
	a, err := app.New(app.Config{
		Transactor: tx, ReadModel: store, Deadlines: store, Projections: store,
		Catalog: catalog.Default(), Currency: catalog.Currency,
		Timeouts:      domain.Timeouts{Stock: StepTimeout, Payment: StepTimeout, Shipment: StepTimeout, Compensation: StepTimeout},
		MaxOpenOrders: opts.MaxOpenOrders,
		Options:       ao,
	})
	if err != nil {
		t.Fatalf("app: %v", err)
	}
	t.Cleanup(func() { _ = a.Close() }) // runs before the database's Close
	return &Env{T: t, Path: opts.Path, DB: db, Store: store, App: a, Clock: opts.Clock, opts: opts}
}

// Restart closes the database and builds a new Env on the same file and
// clock, as a restarted process would.
func (e *Env) Restart() *Env {
	e.T.Helper()
	if err := e.DB.Close(); err != nil {
		e.T.Fatalf("close db: %v", err)
	}
	return New(e.T, e.opts)
}

// Place places an order of items ("SKU-1" x2 when none) and returns its id.
func (e *Env) Place(items ...app.Line) string {
	e.T.Helper()
	if len(items) == 0 {
		items = []app.Line{{SKU: "SKU-1", Quantity: 2}}
	}
	res, err := e.App.Commands.PlaceOrder.Handle(context.Background(), app.PlaceOrder{CustomerID: "c-1", Items: items, RequestID: "req-1"})
	if err != nil {
		e.T.Fatalf("place order: %v", err)
	}
	return res.OrderID
}

// Reply hands m to HandleReply as a new queue message and returns its id.
func (e *Env) Reply(m contracts.Message) string {
	e.T.Helper()
	id := watermill.NewUUID()
	if err := e.ReplyWithID(id, m); err != nil {
		e.T.Fatalf("handle %s: %v", m.MessageType(), err)
	}
	return id
}

// ReplyWithID hands m to HandleReply as message id.
func (e *Env) ReplyWithID(id string, m contracts.Message) error {
	_, err := e.App.Commands.HandleReply.Handle(context.Background(), app.HandleReply{MessageID: id, Reply: m})
	return err
}

// Order returns the order's view.
func (e *Env) Order(id string) app.OrderView {
	e.T.Helper()
	v, err := e.App.Queries.GetOrder.Handle(context.Background(), id)
	if err != nil {
		e.T.Fatalf("get order: %v", err)
	}
	return v
}

// OutboxMessage is one message stored in the outbox, decoded.
type OutboxMessage struct {
	Topic    string
	UUID     string
	Metadata map[string]string
	Message  contracts.Message
}

// Outbox returns every message in the outbox, in the order stored.
func (e *Env) Outbox() []OutboxMessage {
	e.T.Helper()
	table := outbox.SchemaAdapter{}.MessagesTable(outbox.DefaultForwarderTopic)
	rows, err := e.DB.Reader.Query(`SELECT payload FROM ` + table + ` ORDER BY "offset"`)
	if err != nil {
		e.T.Fatalf("read outbox: %v", err)
	}
	defer rows.Close()
	var out []OutboxMessage
	for rows.Next() {
		var payload []byte
		if err := rows.Scan(&payload); err != nil {
			e.T.Fatalf("read outbox: %v", err)
		}
		var env struct {
			DestinationTopic string            `json:"destination_topic"`
			UUID             string            `json:"uuid"`
			Payload          []byte            `json:"payload"`
			Metadata         map[string]string `json:"metadata"`
		}
		if err := json.Unmarshal(payload, &env); err != nil {
			e.T.Fatalf("outbox envelope: %v", err)
		}
		m, err := contracts.Decode(env.Metadata, env.Payload)
		if err != nil {
			e.T.Fatalf("outbox message %s: %v", env.UUID, err)
		}
		out = append(out, OutboxMessage{Topic: env.DestinationTopic, UUID: env.UUID, Metadata: env.Metadata, Message: m})
	}
	if err := rows.Err(); err != nil {
		e.T.Fatalf("read outbox: %v", err)
	}
	return out
}

// OutboxTypes lists the types of the outbox messages of order id.
func (e *Env) OutboxTypes(id string) []string {
	var out []string
	for _, m := range e.Outbox() {
		if m.Message.CorrelationID() == id {
			out = append(out, m.Message.MessageType())
		}
	}
	return out
}

// EventTypes lists the types of the order's events.
func (e *Env) EventTypes(id string) []string {
	e.T.Helper()
	recs, err := e.Store.Events(context.Background(), id)
	if err != nil {
		e.T.Fatalf("events: %v", err)
	}
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Type
	}
	return out
}

// Dump returns the rows of table ordered by its first column, as text, for
// comparing projections.
func (e *Env) Dump(table string) []string {
	e.T.Helper()
	rows, err := e.DB.Reader.Query(`SELECT * FROM ` + table + ` ORDER BY 1`)
	if err != nil {
		e.T.Fatalf("dump %s: %v", table, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			e.T.Fatalf("dump %s: %v", table, err)
		}
		line := ""
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			line += fmt.Sprintf("%s=%v ", cols[i], v)
		}
		out = append(out, line)
	}
	return out
}
