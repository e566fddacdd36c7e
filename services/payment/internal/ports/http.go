package ports

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/pkg/admin"
	"github.com/orderflow/orderflow/services/payment/internal/app"
	"github.com/orderflow/orderflow/services/payment/internal/domain"
)

// HTTP holds payment's own read-only routes, mounted on the admin server:
//
//	GET /state     payment counts by status, ledger totals, consistent
//	GET /payments  payments, newest first (?order_id= &limit=)
//	GET /ledger    ledger entries, oldest first (?order_id= &limit=)
//	GET /gateway   the simulated payment provider's books, newest first
//	               (?order_id= &limit=): per order its first answer, whether
//	               it was refunded, and how many calls repeated it
//
// A query parameter a route does not take, one given twice and one given
// empty are refused with a 400 problem naming it (admin.CheckQuery).
type HTTP struct {
	app app.Application
}

// NewHTTP returns the routes over a.
func NewHTTP(a app.Application) *HTTP { return &HTTP{app: a} }

// Mount adds the routes to e (admin.Config.Routes).
func (h *HTTP) Mount(e *echo.Echo) {
	e.GET("/state", h.state)
	e.GET("/payments", h.payments)
	e.GET("/ledger", h.ledger)
	e.GET("/gateway", h.gateway)
}

// maxListLimit is the longest list served: enough for the e2e harness to
// check a long soak record by record (30,000 orders by default).
const maxListLimit = 100000

// filter reads ?order_id= and ?limit= (1..100000). Any other parameter, one
// given twice and one given empty are refused (admin.CheckQuery): a
// misspelt ?orderid= must not list every order's records.
func filter(c echo.Context) (app.Filter, error) {
	if err := admin.CheckQuery(c.QueryString(), "order_id", "limit"); err != nil {
		return app.Filter{}, err
	}
	f := app.Filter{OrderID: c.QueryParam("order_id")}
	if l := c.QueryParam("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxListLimit {
			return f, admin.BadField("limit", fmt.Sprintf("must be an integer from 1 to %d, got %q", maxListLimit, l))
		}
		f.Limit = n
	}
	return f, nil
}

// state takes no query parameter and refuses any, as the lists refuse
// the ones they do not take.
func (h *HTTP) state(c echo.Context) error {
	if err := admin.CheckQuery(c.QueryString()); err != nil {
		return err
	}
	st, err := h.app.Queries.State(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

func (h *HTTP) payments(c echo.Context) error {
	f, err := filter(c)
	if err != nil {
		return err
	}
	p, err := h.app.Queries.Payments(c.Request().Context(), f)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, paymentsResponse(p))
}

func (h *HTTP) ledger(c echo.Context) error {
	f, err := filter(c)
	if err != nil {
		return err
	}
	l, err := h.app.Queries.Ledger(c.Request().Context(), f)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ledgerResponse(l))
}

func (h *HTTP) gateway(c echo.Context) error {
	f, err := filter(c)
	if err != nil {
		return err
	}
	r, err := h.app.Queries.GatewayRecords(c.Request().Context(), f)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r)
}

// paymentJSON is a payment as GET /payments serves it.
type paymentJSON struct {
	ID          string `json:"payment_id,omitempty"`
	OrderID     string `json:"order_id"`
	CustomerID  string `json:"customer_id,omitempty"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	Status      string `json:"status"`
	Reason      string `json:"reason,omitempty"`
}

func paymentsResponse(ps []domain.Payment) []paymentJSON {
	out := make([]paymentJSON, len(ps))
	for i, p := range ps {
		out[i] = paymentJSON{ID: p.ID, OrderID: p.OrderID, CustomerID: p.CustomerID, AmountCents: p.AmountCents,
			Currency: p.Currency, Status: string(p.Status), Reason: p.Reason}
	}
	return out
}

// ledgerEntryJSON is a ledger entry as GET /ledger serves it.
type ledgerEntryJSON struct {
	ID          int64     `json:"id"`
	PaymentID   string    `json:"payment_id"`
	OrderID     string    `json:"order_id"`
	Kind        string    `json:"kind"`
	AmountCents int64     `json:"amount_cents"`
	Currency    string    `json:"currency"`
	RecordedAt  time.Time `json:"recorded_at"`
}

func ledgerResponse(es []app.LedgerEntry) []ledgerEntryJSON {
	out := make([]ledgerEntryJSON, len(es))
	for i, e := range es {
		out[i] = ledgerEntryJSON{ID: e.ID, PaymentID: e.PaymentID, OrderID: e.OrderID, Kind: string(e.Kind),
			AmountCents: e.AmountCents, Currency: e.Currency, RecordedAt: e.RecordedAt}
	}
	return out
}
