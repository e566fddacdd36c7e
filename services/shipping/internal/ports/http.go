package ports

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/pkg/admin"
	"github.com/orderflow/orderflow/services/shipping/internal/app"
	"github.com/orderflow/orderflow/services/shipping/internal/domain"
)

// HTTP holds shipping's own read-only routes, mounted on the admin server:
//
//	GET /state      shipment counts by status
//	GET /shipments  shipments, newest first (?order_id= &limit=)
//	GET /carrier    the simulated carrier's books, newest first (?order_id=
//	                &limit=): per order its first answer, whether it was
//	                cancelled, and how many calls repeated it
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
	e.GET("/shipments", h.shipments)
	e.GET("/carrier", h.carrier)
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

func (h *HTTP) shipments(c echo.Context) error {
	f, err := filter(c)
	if err != nil {
		return err
	}
	s, err := h.app.Queries.Shipments(c.Request().Context(), f)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, shipmentsResponse(s))
}

func (h *HTTP) carrier(c echo.Context) error {
	f, err := filter(c)
	if err != nil {
		return err
	}
	r, err := h.app.Queries.CarrierRecords(c.Request().Context(), f)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r)
}

// shipmentJSON is a shipment as GET /shipments serves it.
type shipmentJSON struct {
	ID             string      `json:"shipment_id,omitempty"`
	OrderID        string      `json:"order_id"`
	Status         string      `json:"status"`
	Carrier        string      `json:"carrier,omitempty"`
	TrackingNumber string      `json:"tracking_number,omitempty"`
	Lines          []lineJSON  `json:"lines,omitempty"`
	Address        addressJSON `json:"address"`
	Reason         string      `json:"reason,omitempty"`
}

type lineJSON struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

type addressJSON struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code,omitempty"`
	Country    string `json:"country"`
}

func shipmentsResponse(ss []domain.Shipment) []shipmentJSON {
	out := make([]shipmentJSON, len(ss))
	for i, s := range ss {
		var lines []lineJSON
		if len(s.Lines) > 0 {
			lines = make([]lineJSON, len(s.Lines))
			for j, l := range s.Lines {
				lines[j] = lineJSON(l)
			}
		}
		out[i] = shipmentJSON{ID: s.ID, OrderID: s.OrderID, Status: string(s.Status), Carrier: s.Carrier,
			TrackingNumber: s.TrackingNumber, Lines: lines, Address: addressJSON(s.Address), Reason: s.Reason}
	}
	return out
}
