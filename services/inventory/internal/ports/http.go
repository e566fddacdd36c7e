package ports

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/pkg/admin"
	"github.com/orderflow/orderflow/services/inventory/internal/app"
	"github.com/orderflow/orderflow/services/inventory/internal/domain"
)

// HTTP holds inventory's own routes, mounted on the admin server:
//
//	GET  /stock                    [{"sku","available","reserved","initial","restocked"}]
//	POST /stock/{sku}/restock      {"quantity": 10} → the SKU's new stock (once per Idempotency-Key;
//	                               the key sent again with another SKU or quantity: 422; a
//	                               quantity below 1: 400, an unknown SKU: 404, whatever the key)
//	GET  /state                    stock, reservation counts by status, conserved
//	GET  /reservations/{order_id}  one order's reservation
//
// No route takes a query parameter: any is refused with a 400 problem
// naming it (admin.CheckQuery), so that a ?sku= does not silently list
// every SKU.
type HTTP struct {
	app app.Application
}

// NewHTTP returns the routes over a.
func NewHTTP(a app.Application) *HTTP { return &HTTP{app: a} }

// Mount adds the routes to e (admin.Config.Routes).
func (h *HTTP) Mount(e *echo.Echo) {
	e.GET("/stock", h.stock)
	e.POST("/stock/:sku/restock", h.restock)
	e.GET("/state", h.state)
	e.GET("/reservations/:order_id", h.reservation)
}

func (h *HTTP) stock(c echo.Context) error {
	if err := admin.CheckQuery(c.QueryString()); err != nil {
		return err
	}
	s, err := h.app.Queries.Stock(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s)
}

func (h *HTTP) restock(c echo.Context) error {
	// The quantity is the body's: a ?quantity= is refused, not ignored.
	if err := admin.CheckQuery(c.QueryString()); err != nil {
		return err
	}
	var body struct {
		Quantity *int `json:"quantity"`
	}
	if err := admin.DecodeJSON(c, &body); err != nil {
		return err
	}
	if body.Quantity == nil {
		return admin.BadField("quantity", `is required, e.g. {"quantity": 10}`)
	}
	sku, err := admin.PathParam(c, "sku")
	if err != nil {
		return err
	}
	key, err := admin.IdempotencyKey(c.Request())
	if err != nil {
		return err
	}
	res, err := h.app.Commands.Restock.Handle(c.Request().Context(), app.Restock{SKU: sku, Quantity: *body.Quantity, IdempotencyKey: key})
	var (
		reused   *app.KeyReusedError
		quantity *domain.QuantityError
	)
	switch {
	case errors.As(err, &reused):
		return admin.IdempotencyKeyReused(fmt.Sprintf("was sent before with another restock (%s by %d); send a new key for this one",
			reused.Earlier.SKU, reused.Earlier.Quantity))
	case errors.Is(err, app.ErrUnknownSKU):
		return admin.NotFound("sku", fmt.Sprintf("inventory holds no SKU %q", sku))
	case errors.As(err, &quantity):
		return admin.BadField("quantity", quantity.Problem)
	case err != nil:
		return err
	}
	if res.Replayed {
		c.Response().Header().Set(admin.HeaderIdempotentReplayed, "true")
	}
	return c.JSON(http.StatusOK, res.Stock)
}

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

func (h *HTTP) reservation(c echo.Context) error {
	if err := admin.CheckQuery(c.QueryString()); err != nil {
		return err
	}
	orderID, err := admin.PathParam(c, "order_id")
	if err != nil {
		return err
	}
	r, err := h.app.Queries.Reservation(c.Request().Context(), orderID)
	if errors.Is(err, app.ErrNotFound) {
		return admin.NotFound("order_id", fmt.Sprintf("no reservation for order %q", orderID))
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r)
}
