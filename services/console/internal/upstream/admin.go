package upstream

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Fault flag types, as the admin API names them.
const (
	FaultRate     = "rate"
	FaultDuration = "duration"
	FaultString   = "string"
	FaultBool     = "bool"
)

// Fault is one fault flag as GET /faults shows it.
type Fault struct {
	Name        string     `json:"name"`
	Type        string     `json:"type"`
	Value       string     `json:"value"`
	Default     string     `json:"default"`
	Description string     `json:"description"`
	Env         string     `json:"env"`
	Source      string     `json:"source"`
	UpdatedAt   *time.Time `json:"updated_at"`
}

// Active reports a flag that is not at its default value. Rates are
// compared as numbers: "-0" or "0.0" is the default "0".
func (f Fault) Active() bool {
	if f.Type == FaultRate {
		v, err1 := strconv.ParseFloat(f.Value, 64)
		d, err2 := strconv.ParseFloat(f.Default, 64)
		if err1 == nil && err2 == nil {
			return v != d
		}
	}
	return f.Value != f.Default
}

// Stock is one SKU as inventory's GET /stock shows it.
type Stock struct {
	SKU       string `json:"sku"`
	Available int    `json:"available"`
	Reserved  int    `json:"reserved"`
	Initial   int    `json:"initial"`
	Restocked int    `json:"restocked"`
}

// Admin is a client of one service's admin API (pkg/admin), with
// inventory's stock routes and the simulated providers' books of payment
// (/gateway) and shipping (/carrier).
type Admin struct{ c *Client }

// NewAdmin returns a client of the admin API at c's address.
func NewAdmin(c *Client) *Admin { return &Admin{c: c} }

// Client is the underlying HTTP client.
func (a *Admin) Client() *Client { return a.c }

// Health calls GET /healthz.
func (a *Admin) Health(ctx context.Context) error {
	return a.c.do(ctx, request{method: http.MethodGet, path: "/healthz"}, nil)
}

// OutboxPending calls GET /outbox: how many messages the service committed
// and has not forwarded to the queue yet.
func (a *Admin) OutboxPending(ctx context.Context) (int64, error) {
	var out struct {
		Pending *int64 `json:"pending"`
	}
	if err := a.c.do(ctx, request{method: http.MethodGet, path: "/outbox"}, &out); err != nil {
		return 0, err
	}
	if out.Pending == nil {
		return 0, errors.New("GET /outbox: no pending count in the answer")
	}
	return *out.Pending, nil
}

// Faults returns every fault flag of the service, sorted by name.
func (a *Admin) Faults(ctx context.Context) ([]Fault, error) {
	var out []Fault
	err := a.c.do(ctx, request{method: http.MethodGet, path: "/faults"}, &out)
	return out, err
}

// SetFault sets one flag.
func (a *Admin) SetFault(ctx context.Context, name, value string) (Fault, error) {
	body := struct {
		Value string `json:"value"`
	}{Value: value}
	var out Fault
	err := a.c.do(ctx, request{method: http.MethodPut, path: "/faults/" + url.PathEscape(name), body: body}, &out)
	return out, err
}

// ResetFault puts one flag back to its default.
func (a *Admin) ResetFault(ctx context.Context, name string) (Fault, error) {
	var out Fault
	err := a.c.do(ctx, request{method: http.MethodDelete, path: "/faults/" + url.PathEscape(name)}, &out)
	return out, err
}

// Stock returns inventory's stock per SKU.
func (a *Admin) Stock(ctx context.Context) ([]Stock, error) {
	var out []Stock
	err := a.c.do(ctx, request{method: http.MethodGet, path: "/stock"}, &out)
	return out, err
}

// Restock adds quantity units of sku to inventory's stock.
// idempotencyKey, when not empty, makes a retry of the same restock (same
// key, SKU and quantity) add nothing; inventory refuses the key sent with
// another SKU or quantity (a 422 Problem of type idempotency-key-reused).
func (a *Admin) Restock(ctx context.Context, sku string, quantity int, idempotencyKey string) (Stock, error) {
	body := struct {
		Quantity int `json:"quantity"`
	}{Quantity: quantity}
	h := http.Header{}
	if idempotencyKey != "" {
		h.Set("Idempotency-Key", idempotencyKey)
	}
	var out Stock
	err := a.c.do(ctx, request{method: http.MethodPost, path: "/stock/" + url.PathEscape(sku) + "/restock", body: body, header: h}, &out)
	return out, err
}

// Outcomes of a provider record: the provider's answer to the first
// request of an order.
const (
	// OutcomeAccepted: charged (gateway) or booked (carrier).
	OutcomeAccepted = "ACCEPTED"
	// OutcomeRefused: declined; nothing was taken.
	OutcomeRefused = "REFUSED"
	// OutcomeVoided: a refund or cancellation reached the provider before
	// any request, so the requests were refused.
	OutcomeVoided = "VOIDED"
)

// ProviderRecord is a simulated provider's line for one order, as
// payment's GET /gateway and shipping's GET /carrier show it. The provider
// is idempotent per order id: Requests and Cancels count the calls that
// reached it, of which only the first of each had an effect.
type ProviderRecord struct {
	OrderID string `json:"order_id"`
	Outcome string `json:"outcome"`
	// Reference is the payment id (pay_…) or shipment id (shp_…) of an
	// accepted request.
	Reference string `json:"reference"`
	// AmountCents is what an accepted charge took (gateway only).
	AmountCents int64  `json:"amount_cents"`
	Reason      string `json:"reason"`
	// Cancelled: the accepted request was refunded or withdrawn.
	Cancelled bool      `json:"cancelled"`
	Requests  int       `json:"requests"`
	Cancels   int       `json:"cancels"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Gateway returns payment's simulated gateway record of an order, nil
// when the gateway has none (yet).
func (a *Admin) Gateway(ctx context.Context, orderID string) (*ProviderRecord, error) {
	return a.providerRecord(ctx, "/gateway", orderID)
}

// Carrier returns shipping's simulated carrier record of an order, nil
// when the carrier has none (yet).
func (a *Admin) Carrier(ctx context.Context, orderID string) (*ProviderRecord, error) {
	return a.providerRecord(ctx, "/carrier", orderID)
}

func (a *Admin) providerRecord(ctx context.Context, path, orderID string) (*ProviderRecord, error) {
	var out []ProviderRecord
	err := a.c.do(ctx, request{method: http.MethodGet, path: path, query: url.Values{"order_id": {orderID}}}, &out)
	if err != nil {
		return nil, err
	}
	// The list is filtered by order id; checking it again costs nothing.
	for i := range out {
		if out[i].OrderID == orderID {
			return &out[i], nil
		}
	}
	return nil, nil
}
