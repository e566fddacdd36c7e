package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/orderflow/orderflow/pkg/catalog"
	"github.com/orderflow/orderflow/pkg/idempotency"
	"github.com/orderflow/orderflow/pkg/plaintext"
	"github.com/orderflow/orderflow/services/order/internal/domain"
)

// Limits on what one order may hold, checked before the domain's own
// invariants.
const (
	MaxItems    = 100
	MaxQuantity = 1000
	MaxIDLength = 128
	// MaxTextLength bounds free text that travels in messages: each
	// shipping address field, a cancellation's reason.
	MaxTextLength = 256
)

// Line is one requested order line: the price comes from the catalogue.
type Line struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// PlaceOrder asks to accept an order and start its saga.
type PlaceOrder struct {
	CustomerID string
	Items      []Line
	// ShippingAddress is where the order ships; nil means
	// DefaultShippingAddress(CustomerID).
	ShippingAddress *domain.Address
	// IdempotencyKey, when set, makes a retried request return the order
	// the first one placed instead of placing another.
	IdempotencyKey string
	// RequestID identifies the request (the causation id of the events
	// and messages); optional.
	RequestID string
}

// PlaceOrderResult names the placed order. Replayed is true when an earlier
// request with the same idempotency key placed it.
type PlaceOrderResult struct {
	OrderID  string
	Replayed bool
	// Order is the order as this request committed it, the view a GetOrder
	// right after the commit would have returned: the answer to the
	// request needs no read that could fail once the order exists. Zero
	// when Replayed (this request committed nothing; read the order with
	// GetOrder).
	Order OrderView
}

// DefaultShippingAddress is the address of an order placed without one: a
// demo address in the customer's name.
func DefaultShippingAddress(customerID string) domain.Address {
	name := strings.TrimSpace(customerID)
	if name == "" {
		name = "Customer" // the missing customer id is reported on its own
	}
	return domain.Address{
		Name: name, Line1: "1 Rue de Rivoli", City: "Paris", PostalCode: "75001", Country: "FR",
	}
}

// PlaceOrderHandler prices an order from the catalogue, places it and sends
// ReserveStock (and the public OrderPlaced) through the outbox, in one
// transaction that also records the idempotency key.
type PlaceOrderHandler struct {
	tx       Transactor
	catalog  catalog.Catalog
	currency string
	timeouts domain.Timeouts
	c        *committer
	maxOpen  int // 0: no limit (Config.MaxOpenOrders)
}

// NewPlaceOrderHandler returns a PlaceOrderHandler. The catalogue's prices
// are in currency.
func NewPlaceOrderHandler(tx Transactor, cat catalog.Catalog, currency string, timeouts domain.Timeouts, opts Options) (PlaceOrderHandler, error) {
	if tx == nil {
		return PlaceOrderHandler{}, errors.New("new place order handler: transactor is nil")
	}
	if err := cat.Validate(); err != nil {
		return PlaceOrderHandler{}, fmt.Errorf("new place order handler: %w", err)
	}
	if currency == "" {
		return PlaceOrderHandler{}, errors.New("new place order handler: currency is empty")
	}
	if err := timeouts.Validate(); err != nil {
		return PlaceOrderHandler{}, fmt.Errorf("new place order handler: %w", err)
	}
	c, err := newCommitter(opts)
	if err != nil {
		return PlaceOrderHandler{}, fmt.Errorf("new place order handler: %w", err)
	}
	return PlaceOrderHandler{tx: tx, catalog: cat, currency: currency, timeouts: timeouts, c: c}, nil
}

// Handle places the order. Invalid input returns a *domain.ValidationError
// naming every field at fault (an unknown SKU and a malformed idempotency
// key included), found before any transaction and whatever the key: an
// invalid order needs no database, neither waits for nor holds its write
// lock, and its key is not looked up. A valid order with an idempotency
// key that placed an order from another request returns
// idempotency.ErrKeyReused, with the key of an order from this same
// request that order (Replayed); with the open orders at the limit,
// ErrTooManyOpenOrders (a request whose key placed an order already still
// gets that order).
func (h PlaceOrderHandler) Handle(ctx context.Context, cmd PlaceOrder) (PlaceOrderResult, error) {
	if h.tx == nil {
		return PlaceOrderResult{}, errors.New("place order: handler not initialised")
	}
	addr := DefaultShippingAddress(cmd.CustomerID)
	if cmd.ShippingAddress != nil {
		addr = *cmd.ShippingAddress
	}
	items, problems := h.price(cmd)
	order := domain.NewOrder{
		ID: h.c.opts.NewID(), CustomerID: cmd.CustomerID, Items: items,
		Currency: h.currency, ShippingAddress: addr,
	}
	if err := mergeProblems(problems, order.Validate()); err != nil {
		return PlaceOrderResult{}, fmt.Errorf("place order: %w", err)
	}
	hash, err := requestHash(cmd.CustomerID, cmd.Items, addr)
	if err != nil {
		return PlaceOrderResult{}, fmt.Errorf("place order: %w", err)
	}

	var (
		res PlaceOrderResult
		o   *domain.Order
		d   domain.Decision
	)
	err = h.c.retryOnConflict(ctx, func() error {
		return h.tx.InTx(ctx, func(ctx context.Context, tx Tx) error {
			res = PlaceOrderResult{}
			if cmd.IdempotencyKey != "" {
				rec, found, err := tx.IdempotencyKey(ctx, cmd.IdempotencyKey)
				if err != nil {
					return err
				}
				if found {
					if rec.RequestHash != hash {
						return fmt.Errorf("%w: key %q placed order %s", idempotency.ErrKeyReused, cmd.IdempotencyKey, rec.OrderID)
					}
					res = PlaceOrderResult{OrderID: rec.OrderID, Replayed: true}
					return nil
				}
			}
			now := h.c.now()
			var err error
			// Built again by each attempt: a failed one's commit may have
			// taken the events of the order it built.
			if o, d, err = domain.PlaceOrder(order, h.timeouts, now); err != nil {
				return err
			}
			// After validation: an order that can never be placed is
			// told so, not to come back later.
			if h.maxOpen > 0 {
				open, err := tx.OpenOrders(ctx)
				if err != nil {
					return err
				}
				if open >= int64(h.maxOpen) {
					return fmt.Errorf("%w: %d orders are open, the limit is %d", ErrTooManyOpenOrders, open, h.maxOpen)
				}
			}
			meta := newMetadata(ctx, o.ID(), "http", cmd.RequestID)
			if err := h.c.commit(ctx, tx, o, d, meta, now); err != nil {
				return err
			}
			if cmd.IdempotencyKey != "" {
				if err := tx.SaveIdempotencyKey(ctx, IdempotencyRecord{
					Key: cmd.IdempotencyKey, RequestHash: hash, OrderID: o.ID(), CreatedAt: now,
				}); err != nil {
					return err
				}
			}
			res = PlaceOrderResult{OrderID: o.ID(), Order: placedView(o, meta, now)}
			return nil
		})
	})
	if err != nil {
		if errors.Is(err, ErrTooManyOpenOrders) {
			h.c.metrics.refused.Add(ctx, 1)
		}
		return PlaceOrderResult{}, fmt.Errorf("place order: %w", err)
	}
	if !res.Replayed {
		h.c.observe(ctx, o, d, h.c.now())
		h.c.opts.Logger.InfoContext(ctx, "order placed", "order_id", res.OrderID, "total_cents", o.TotalCents())
	}
	return res, nil
}

// placedView is the read model's view of o just placed (its events
// recorded at at with meta).
func placedView(o *domain.Order, meta EventMetadata, at time.Time) OrderView {
	m := ViewMeta{Version: o.Version(), TraceID: meta.TraceID, UpdatedAt: at}
	if o.Status().IsTerminal() {
		m.FinishedAt = &at
	}
	return ViewOf(o, m)
}

// price looks the lines up in the catalogue and checks the limits the
// domain does not know. Unknown SKUs are priced at one cent so that the
// domain still reports the other problems of the order.
func (h PlaceOrderHandler) price(cmd PlaceOrder) ([]domain.Item, []domain.FieldError) {
	var problems []domain.FieldError
	add := func(field, format string, args ...any) {
		problems = append(problems, domain.FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	problems = append(problems, textProblems("customer_id", cmd.CustomerID, MaxIDLength)...)
	if a := cmd.ShippingAddress; a != nil {
		for _, f := range []struct{ name, v string }{
			{"name", a.Name}, {"line1", a.Line1}, {"line2", a.Line2}, {"city", a.City}, {"postal_code", a.PostalCode},
		} {
			problems = append(problems, textProblems("shipping_address."+f.name, f.v, MaxTextLength)...)
		}
	}
	if k := cmd.IdempotencyKey; k != "" && !idempotency.ValidKey(k) {
		add("Idempotency-Key", "must be 1 to %d printable ASCII characters", idempotency.MaxKeyLength)
	}
	if len(cmd.Items) > MaxItems {
		add("items", "must hold at most %d items, got %d", MaxItems, len(cmd.Items))
	}
	items := make([]domain.Item, len(cmd.Items))
	for i, l := range cmd.Items {
		items[i] = domain.Item{SKU: l.SKU, Quantity: l.Quantity, UnitPriceCents: 1}
		if l.Quantity > MaxQuantity {
			add(fmt.Sprintf("items[%d].quantity", i), "must be at most %d, got %d", MaxQuantity, l.Quantity)
		}
		if strings.TrimSpace(l.SKU) == "" {
			continue // the domain reports it
		}
		p, err := h.catalog.Lookup(l.SKU)
		if err != nil {
			add(fmt.Sprintf("items[%d].sku", i), "is not in the catalogue: %q", l.SKU)
			continue
		}
		items[i].UnitPriceCents = p.UnitPriceCents
	}
	return items, problems
}

// mergeProblems joins the handler's own problems with the domain's
// validation error, if any.
func mergeProblems(problems []domain.FieldError, err error) error {
	var ve *domain.ValidationError
	switch {
	case err == nil && len(problems) == 0:
		return nil
	case err == nil:
		return &domain.ValidationError{Fields: problems}
	case errors.As(err, &ve):
		return &domain.ValidationError{Fields: append(problems, ve.Fields...)}
	}
	return err
}

// textProblems reports what is wrong with an id or free text that travels
// in messages, logs and the console's pages: more than maxLen characters
// (as the OpenAPI document's maxLength counts them), or a control or
// bidirectional formatting character (plaintext.Unsafe: a NUL or an
// escape sequence does harm there, a right-to-left override makes an id
// read as another).
func textProblems(field, v string, maxLen int) []domain.FieldError {
	var problems []domain.FieldError
	if n := utf8.RuneCountInString(v); n > maxLen {
		problems = append(problems, domain.FieldError{Field: field, Problem: fmt.Sprintf("must be at most %d characters long, got %d", maxLen, n)})
	}
	if strings.ContainsFunc(v, plaintext.Unsafe) {
		problems = append(problems, domain.FieldError{Field: field, Problem: "must not contain control or bidirectional formatting characters"})
	}
	return problems
}

// requestHash fingerprints what an idempotent request asked for.
func requestHash(customerID string, items []Line, addr domain.Address) (string, error) {
	b, err := json.Marshal(struct {
		CustomerID string         `json:"customer_id"`
		Items      []Line         `json:"items"`
		Address    domain.Address `json:"shipping_address"`
	}{customerID, items, addr})
	if err != nil {
		return "", fmt.Errorf("hash request: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
