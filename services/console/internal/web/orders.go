package web

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/pkg/idempotency"
	"github.com/orderflow/orderflow/services/console/internal/upstream"
)

// Limits of the order form, as the order API enforces them.
const (
	maxCustomerID  = 128
	maxQuantity    = 1000
	maxReason      = 200
	ordersPageSize = 25
)

// statusCount is one entry of the status filter.
type statusCount struct {
	Status string
	Count  int64
}

// took says how long an order took, or that it is still running.
func took(v any) string {
	var o *upstream.Order
	switch x := v.(type) {
	case upstream.Order:
		o = &x
	case *upstream.Order:
		o = x
	}
	if o == nil {
		return ""
	}
	if o.FinishedAt == nil {
		return "running"
	}
	return humanDuration(o.FinishedAt.Sub(o.PlacedAt))
}

// ordersList is the live part of the Orders page.
type ordersList struct {
	Status     string
	Cursor     string
	Filters    []statusCount
	Total      int64
	CountsDown string
	Orders     []upstream.Order
	NextCursor string
	ListDown   string
	// ListError is a refusal of the order API (a bad cursor, …).
	ListError string
}

// orderForm is the place-order form.
type orderForm struct {
	CustomerID     string
	IdempotencyKey string
	Rows           []formRow
	// StockDown says why the stock is unknown.
	StockDown string
	// Errors by field: "customer_id", "items", "form".
	Errors map[string]string
}

// formRow is one SKU of the form.
type formRow struct {
	SKU        string
	Name       string
	PriceCents int64
	Currency   string
	Available  int
	Reserved   int
	Known      bool // Available and Reserved come from inventory
	Quantity   string
	Error      string
}

// ordersView is the Orders page.
type ordersView struct {
	Form template.HTML
	List template.HTML
}

// normStatus returns the status filter in the API's spelling, "" for all,
// and false when it is not a status.
func normStatus(s string) (string, bool) {
	s = strings.ToUpper(strings.TrimSpace(s))
	if s == "" || s == "ALL" {
		return "", true
	}
	for _, st := range upstream.Statuses() {
		if st == s {
			return s, true
		}
	}
	return "", false
}

func (s *Server) loadOrdersList(ctx context.Context, status, cursor string) ordersList {
	l := ordersList{Status: status, Cursor: cursor}
	var (
		wg     sync.WaitGroup
		counts upstream.Counts
		cErr   error
		pg     upstream.OrderPage
		lErr   error
	)
	wg.Go(func() { counts, cErr = s.orders.Counts(ctx) })
	wg.Go(func() { pg, lErr = s.orders.List(ctx, status, ordersPageSize, cursor) })
	wg.Wait()
	if cErr != nil {
		l.CountsDown = downText(cErr)
	} else {
		l.Total = counts.Total
		for _, st := range upstream.Statuses() {
			l.Filters = append(l.Filters, statusCount{Status: st, Count: counts.Counts[st]})
		}
	}
	switch p, ok := upstream.AsProblem(lErr); {
	case lErr == nil:
		l.Orders, l.NextCursor = pg.Orders, pg.NextCursor
	case ok && p.Status < 500:
		l.ListError = p.Error()
	default:
		l.ListDown = downText(lErr)
	}
	return l
}

func ordersListSrc(status, cursor string) string {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	return withQuery("/orders/live", q)
}

func (s *Server) ordersListRegion(p *page, l ordersList) (template.HTML, error) {
	h, _, err := s.liveHTML("orders", "orders-list", pageWith(p, l), "orders-live",
		ordersListSrc(l.Status, l.Cursor), s.cfg.Refresh, "orders-changed from:body")
	return h, err
}

func (s *Server) ordersLive(c echo.Context) error {
	status, _ := normStatus(c.QueryParam("status"))
	cursor := c.QueryParam("cursor")
	p := s.newPage(c, "", "orders")
	l := s.loadOrdersList(c.Request().Context(), status, cursor)
	return s.writeLive(c, "orders", "orders-list", pageWith(p, l), "orders-live",
		ordersListSrc(status, cursor), s.cfg.Refresh, "orders-changed from:body")
}

func (s *Server) ordersPage(c echo.Context) error {
	p := s.newPage(c, "Orders", "orders")
	status, ok := normStatus(c.QueryParam("status"))
	if !ok {
		p.Flash = flashError(fmt.Sprintf("There is no status %q; showing every order.", c.QueryParam("status")))
	}
	return s.writeOrdersPage(c, p, nil, status, c.QueryParam("cursor"))
}

// writeOrdersPage writes the Orders page with form, or an empty one when
// form is nil.
func (s *Server) writeOrdersPage(c echo.Context, p *page, form *orderForm, status, cursor string) error {
	ctx := c.Request().Context()
	var (
		v    ordersView
		list ordersList
	)
	loads := []func(){func() { list = s.loadOrdersList(ctx, status, cursor) }}
	if form == nil {
		form = &orderForm{}
		loads = append(loads, func() { *form = s.newOrderForm(ctx, "") })
	}
	err := s.loadWithBanner(ctx, p, loads...)
	if err != nil {
		return err
	}
	if v.Form, err = s.pages.render("orders", "order-form", pageWith(p, *form)); err != nil {
		return err
	}
	if v.List, err = s.ordersListRegion(p, list); err != nil {
		return err
	}
	p.Data = v
	return s.writePage(c, "orders", p)
}

// newOrderForm returns an empty form over inventory's stock (or the
// catalogue when inventory is down), with a fresh idempotency key.
func (s *Server) newOrderForm(ctx context.Context, customerID string) orderForm {
	f := orderForm{CustomerID: customerID, IdempotencyKey: newKey(), Errors: map[string]string{}}
	stock, err := s.inventory.Stock(ctx)
	if err != nil {
		f.StockDown = downText(err)
		for _, p := range s.cfg.Catalog {
			f.Rows = append(f.Rows, formRow{SKU: p.SKU, Name: p.Name, PriceCents: p.UnitPriceCents, Currency: currency})
		}
		return f
	}
	for _, st := range stock {
		r := formRow{SKU: st.SKU, Available: st.Available, Reserved: st.Reserved, Known: true, Currency: currency}
		if p, err := s.cfg.Catalog.Lookup(st.SKU); err == nil {
			r.Name, r.PriceCents = p.Name, p.UnitPriceCents
		}
		f.Rows = append(f.Rows, r)
	}
	return f
}

// currency of the catalogue's prices.
const currency = "EUR"

// newKey returns a random idempotency key.
func newKey() string { return "console-" + rand.Text() }

// parseOrderForm reads the posted form into f (built by newOrderForm) and
// validates it; it returns the lines to order.
func parseOrderForm(c echo.Context, f *orderForm) []upstream.Line {
	f.CustomerID = strings.TrimSpace(c.FormValue("customer_id"))
	if k := c.FormValue("idempotency_key"); k != "" {
		f.IdempotencyKey = k
	}
	switch {
	case f.CustomerID == "":
		f.Errors["customer_id"] = "Enter a customer id, e.g. customer-1."
	case utf8.RuneCountInString(f.CustomerID) > maxCustomerID: // characters, as the order API counts them
		f.Errors["customer_id"] = fmt.Sprintf("A customer id is at most %d characters long.", maxCustomerID)
	case strings.IndexFunc(f.CustomerID, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		f.Errors["customer_id"] = "A customer id holds printable characters only."
	}
	if !idempotency.ValidKey(f.IdempotencyKey) {
		f.IdempotencyKey = newKey()
	}
	form, _ := c.FormParams()
	skus, qtys := form["sku"], form["quantity"]
	if len(skus) != len(qtys) {
		f.Errors["items"] = "The form is incomplete; reload the page."
		return nil
	}
	rows := map[string]int{}
	for i, r := range f.Rows {
		rows[r.SKU] = i
	}
	var lines []upstream.Line
	for i, sku := range skus {
		q := strings.TrimSpace(qtys[i])
		idx, known := rows[sku]
		if !known {
			f.Errors["items"] = fmt.Sprintf("SKU %q is not in the catalogue.", sku)
			continue
		}
		f.Rows[idx].Quantity = q
		if q == "" || q == "0" {
			continue
		}
		n, err := strconv.Atoi(q)
		switch {
		case err != nil:
			f.Rows[idx].Error = fmt.Sprintf("Enter a whole number, not %q.", q)
		case n < 0 || n > maxQuantity:
			f.Rows[idx].Error = fmt.Sprintf("Enter 0 to %d.", maxQuantity)
		default:
			// More than is available is allowed on purpose: inventory
			// then rejects the order, which is worth watching.
			lines = append(lines, upstream.Line{SKU: sku, Quantity: n})
		}
	}
	if len(lines) == 0 && f.Errors["items"] == "" && !rowErrors(f.Rows) {
		f.Errors["items"] = "Enter a quantity for at least one SKU."
	}
	return lines
}

func rowErrors(rows []formRow) bool {
	for _, r := range rows {
		if r.Error != "" {
			return true
		}
	}
	return false
}

func (s *Server) placeOrder(c echo.Context) error {
	ctx := c.Request().Context()
	p := s.newPage(c, "Orders", "orders")
	f := s.newOrderForm(ctx, "")
	lines := parseOrderForm(c, &f)

	status, fl := http.StatusUnprocessableEntity, flashError("The order was not placed: see the form.")
	var placed upstream.Order
	if len(f.Errors) == 0 && !rowErrors(f.Rows) {
		o, err := s.orders.Place(ctx, upstream.PlaceOrder{CustomerID: f.CustomerID, Items: lines}, f.IdempotencyKey)
		prob, isProblem := upstream.AsProblem(err)
		switch {
		case err == nil:
			placed, status = o, http.StatusOK
		case isProblem && keyReused(prob):
			// The key went with other details: kept, every later submit
			// would be refused the same way. An earlier attempt with it
			// may have placed an order, which a new key would place again.
			f.IdempotencyKey = newKey()
			f.Errors["form"] = "An earlier attempt from this form, with other details, may already have placed an order. " +
				"Look at the orders list; press Place order again to place this one as a new order."
			fl = flashError("The order was not placed: this form was used before, with other details.")
			fl.Link, fl.LinkText = "/orders", "See the orders"
		case isProblem && prob.Status < 500:
			mapOrderProblem(prob, &f, lines)
		case upstream.OutcomeUnknown(err):
			// The form keeps its idempotency key: sent again, it places
			// the order at most once.
			status, fl = http.StatusServiceUnavailable, flashError("The order may or may not be placed: "+downText(err)+
				". Sending this form again is safe: its idempotency key places one order at most.")
			fl.Link, fl.LinkText = "/orders", "See the orders"
		default:
			status, fl = http.StatusServiceUnavailable, flashError("The order was not placed: "+downText(err))
		}
	}
	if status == http.StatusOK {
		fl = &flash{Kind: "ok", Msg: fmt.Sprintf("Order placed (%s).", placed.Status),
			Link: "/orders/" + url.PathEscape(placed.ID), LinkText: placed.ID, OrderID: placed.ID}
		if !isHTMX(c) {
			return redirectWithFlash(c, fl.Link, fl)
		}
		f = s.newOrderForm(ctx, f.CustomerID)
	}
	if !isHTMX(c) {
		p.Flash, p.Status = fl, status
		return s.writeOrdersPage(c, p, &f, "", "")
	}
	form, err := s.pages.render("orders", "order-form", pageWith(p, f))
	if err != nil {
		return err
	}
	trigger := ""
	if status == http.StatusOK {
		trigger = "orders-changed"
	}
	return s.writeAction(c, status, form, fl, trigger)
}

// keyReused reports the order API (or inventory, for a restock) refusing
// an idempotency key already used for a different request.
func keyReused(p *upstream.Problem) bool {
	// The type, not the field: an empty or repeated key is a 422 on the
	// same field, and not a sign of an earlier order.
	return p.Status == http.StatusUnprocessableEntity && p.Type == idempotency.ProblemTypeKeyReused
}

// mapOrderProblem puts the order API's field errors on the form.
func mapOrderProblem(p *upstream.Problem, f *orderForm, lines []upstream.Line) {
	fields := p.Fields()
	if len(fields) == 0 {
		f.Errors["form"] = p.Error()
		return
	}
	rows := map[string]int{}
	for i, r := range f.Rows {
		rows[r.SKU] = i
	}
	for field, detail := range fields {
		switch {
		case field == "customer_id":
			f.Errors["customer_id"] = "The order service says: customer id " + detail
		case strings.HasPrefix(field, "items["):
			var i int
			if _, err := fmt.Sscanf(field, "items[%d]", &i); err == nil && i >= 0 && i < len(lines) {
				if idx, ok := rows[lines[i].SKU]; ok {
					f.Rows[idx].Error = "The order service says: " + strings.TrimPrefix(field, fmt.Sprintf("items[%d].", i)) + " " + detail
					continue
				}
			}
			f.Errors["items"] = field + " " + detail
		case field == "items":
			f.Errors["items"] = "The order service says: items " + detail
		default:
			f.Errors["form"] = "The order service says: " + field + " " + detail
		}
	}
}

// ---- order detail ---------------------------------------------------------------

// orderView is the live part of the order page.
type orderView struct {
	ID          string
	Order       *upstream.Order
	Down        string
	NotFound    bool
	Timeline    []timelineEntry
	EventsDown  string
	TraceURL    string
	Cancellable bool
	Terminal    bool
	// Providers are the payment gateway's and the carrier's records of
	// the order.
	Providers []providerView
}

// redeliveryWindow is how long after an order ended its page keeps
// polling: a command redelivered after a crash can still reach a provider
// then (the SQLite queue's default lease is 30 s), and the "At the
// providers" card should show the repeat without a reload.
const redeliveryWindow = 45 * time.Second

// pollEvery is how often the order's live region polls at now: not at all
// once the order has ended (redeliveryWindow ago) and everything it shows
// could be read.
func (v orderView) pollEvery(refresh time.Duration, now time.Time) time.Duration {
	if v.NotFound {
		return 0 // the order service answered that there is no such order
	}
	if !v.Terminal || v.EventsDown != "" {
		return refresh
	}
	if o := v.Order; o != nil && o.FinishedAt != nil && now.Sub(*o.FinishedAt) < redeliveryWindow {
		return refresh
	}
	for _, p := range v.Providers {
		if p.Down != "" {
			return refresh
		}
	}
	return 0 // nothing more will happen
}

func validOrderID(id string) bool {
	return id != "" && len(id) <= maxCustomerID && strings.IndexFunc(id, func(r rune) bool { return !unicode.IsPrint(r) || r == ' ' }) < 0
}

func (s *Server) loadOrder(ctx context.Context, id string) orderView {
	v := orderView{ID: id}
	var (
		wg   sync.WaitGroup
		o    upstream.Order
		oErr error
		evs  []upstream.Event
		eErr error
		gRec *upstream.ProviderRecord
		gErr error
		cRec *upstream.ProviderRecord
		cErr error
	)
	wg.Go(func() { o, oErr = s.orders.Get(ctx, id) })
	wg.Go(func() { evs, eErr = s.orders.Events(ctx, id) })
	wg.Go(func() { gRec, gErr = s.payment.Gateway(ctx, id) })
	wg.Go(func() { cRec, cErr = s.shipping.Carrier(ctx, id) })
	wg.Wait()
	if p, ok := upstream.AsProblem(oErr); ok && p.Status == http.StatusNotFound {
		v.NotFound = true
		return v
	}
	if oErr != nil {
		v.Down = downText(oErr)
		return v
	}
	if o.ID == "" {
		// An answer without an order: another route of the order API
		// under /orders/ (GET /orders/counts), which decodes as a blank
		// order.
		v.NotFound = true
		return v
	}
	v.Order = &o
	v.Cancellable = upstream.IsCancellable(o.Status)
	v.Terminal = upstream.IsTerminal(o.Status)
	if o.TraceID != "" {
		v.TraceURL = s.jaeger + "/trace/" + url.PathEscape(o.TraceID)
	}
	if eErr != nil {
		v.EventsDown = downText(eErr)
	} else {
		v.Timeline = timeline(evs, o.PlacedAt)
	}
	cur := o.Currency
	if cur == "" {
		cur = currency
	}
	v.Providers = []providerView{
		providerResult(gatewayWords, cur, v.Terminal, gRec, gErr),
		providerResult(carrierWords, cur, v.Terminal, cRec, cErr),
	}
	return v
}

func (s *Server) orderRegion(p *page, v orderView) (template.HTML, error) {
	h, _, err := s.liveHTML("order", "order-live", pageWith(p, v), "order-live",
		"/orders/"+url.PathEscape(v.ID)+"/live", v.pollEvery(s.cfg.Refresh, s.cfg.Now()), "")
	return h, err
}

func (s *Server) orderPage(c echo.Context) error {
	id, err := pathParam(c, "id")
	if err != nil {
		return err
	}
	if !validOrderID(id) {
		return &pageError{status: http.StatusNotFound, title: "No such order", detail: "That is not an order id."}
	}
	p := s.newPage(c, "Order "+shortID(id), "orders")
	var v orderView
	if err := s.loadWithBanner(c.Request().Context(), p, func() { v = s.loadOrder(c.Request().Context(), id) }); err != nil {
		return err
	}
	if v.NotFound {
		p.Status = http.StatusNotFound
	}
	region, err := s.orderRegion(p, v)
	if err != nil {
		return err
	}
	p.Data = struct {
		ID   string
		Live template.HTML
	}{id, region}
	return s.writePage(c, "order", p)
}

func (s *Server) orderLive(c echo.Context) error {
	id, err := pathParam(c, "id")
	if err != nil {
		return err
	}
	if !validOrderID(id) {
		return &pageError{status: http.StatusNotFound, title: "No such order", detail: "That is not an order id."}
	}
	p := s.newPage(c, "", "orders")
	v := s.loadOrder(c.Request().Context(), id)
	return s.writeLive(c, "order", "order-live", pageWith(p, v), "order-live", "/orders/"+url.PathEscape(id)+"/live",
		v.pollEvery(s.cfg.Refresh, s.cfg.Now()), "")
}

func (s *Server) cancelOrder(c echo.Context) error {
	id, err := pathParam(c, "id")
	if err != nil {
		return err
	}
	if !validOrderID(id) {
		return &pageError{status: http.StatusNotFound, title: "No such order", detail: "That is not an order id."}
	}
	ctx := c.Request().Context()
	reason := strings.TrimSpace(c.FormValue("reason"))
	status, fl := http.StatusOK, (*flash)(nil)
	if utf8.RuneCountInString(reason) > maxReason { // characters, as the input's maxlength and the order API count them
		status, fl = http.StatusUnprocessableEntity, flashError(fmt.Sprintf("Not cancelled: the reason is longer than %d characters.", maxReason))
	} else {
		o, err := s.orders.Cancel(ctx, id, reason)
		prob, isProblem := upstream.AsProblem(err)
		switch {
		case err == nil:
			fl = flashOK(fmt.Sprintf("Cancellation requested: the order is %s.", o.Status))
		case isProblem && prob.Status < 500:
			status = prob.Status
			msg := prob.Detail
			if msg == "" {
				msg = prob.Title
			}
			fl = flashError("Not cancelled: " + msg)
		case upstream.OutcomeUnknown(err):
			status, fl = http.StatusServiceUnavailable, flashError("The order may or may not be cancelled: "+downText(err)+
				". Look at its status before you try again.")
		default:
			status, fl = http.StatusServiceUnavailable, flashError("Not cancelled: "+downText(err))
		}
	}
	if !isHTMX(c) {
		if status == http.StatusOK {
			return redirectWithFlash(c, "/orders/"+url.PathEscape(id), fl)
		}
		p := s.newPage(c, "Order "+shortID(id), "orders")
		var v orderView
		if err := s.loadWithBanner(ctx, p, func() { v = s.loadOrder(ctx, id) }); err != nil {
			return err
		}
		region, err := s.orderRegion(p, v)
		if err != nil {
			return err
		}
		p.Data = struct {
			ID   string
			Live template.HTML
		}{id, region}
		p.Flash, p.Status = fl, status
		return s.writePage(c, "order", p)
	}
	p := s.newPage(c, "", "orders")
	region, err := s.orderRegion(p, s.loadOrder(ctx, id))
	if err != nil {
		return err
	}
	return s.writeAction(c, status, region, fl, "orders-changed")
}

// ---- timeline -------------------------------------------------------------------

// Kinds of timeline entries; the page styles each.
const (
	kindStart        = "start"
	kindForward      = "forward"
	kindOK           = "ok"
	kindFailure      = "failure"
	kindTimeout      = "timeout"
	kindCancel       = "cancel"
	kindCompensation = "compensation"
	kindCompleted    = "completed"
	kindEnded        = "ended"
	kindWarning      = "warning"
	kindOther        = "other"
)

// timelineEntry is one event of the saga as the order page shows it.
type timelineEntry struct {
	Version     int
	Type        string
	Step        string
	Title       string
	Detail      string
	Kind        string
	At          time.Time
	SincePlaced time.Duration
	Cause       string
}

// eventData holds the fields of every event type that the timeline shows.
type eventData struct {
	Reason         string    `json:"reason"`
	Steps          []string  `json:"steps"`
	Deadline       time.Time `json:"deadline"`
	AmountCents    int64     `json:"amount_cents"`
	PaymentID      string    `json:"payment_id"`
	ShipmentID     string    `json:"shipment_id"`
	Carrier        string    `json:"carrier"`
	TrackingNumber string    `json:"tracking_number"`
	TotalCents     int64     `json:"total_cents"`
	Currency       string    `json:"currency"`
	Items          []struct {
		SKU      string `json:"sku"`
		Quantity int    `json:"quantity"`
	} `json:"items"`
}

// undo names the compensation of a saga step.
func undo(step string) string {
	switch step {
	case "stock":
		return "release stock"
	case "payment":
		return "refund payment"
	case "shipment":
		return "cancel shipment"
	}
	return "undo " + step
}

func undoAll(steps []string) string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = undo(s)
	}
	return strings.Join(out, ", ")
}

// timeline turns an order's events into entries, oldest first.
func timeline(evs []upstream.Event, placedAt time.Time) []timelineEntry {
	if len(evs) > 0 && placedAt.IsZero() {
		placedAt = evs[0].RecordedAt
	}
	out := make([]timelineEntry, 0, len(evs))
	for _, ev := range evs {
		var d eventData
		_ = json.Unmarshal(ev.Data, &d) // a field that does not parse stays empty
		e := timelineEntry{Version: ev.Version, Type: ev.Type, At: ev.RecordedAt, SincePlaced: ev.RecordedAt.Sub(placedAt), Cause: ev.Metadata.Cause}
		switch ev.Type {
		case "OrderPlaced":
			e.Step, e.Kind, e.Title = "Order", kindStart, "Order placed; stock reservation requested"
			items := make([]string, len(d.Items))
			for i, it := range d.Items {
				items[i] = fmt.Sprintf("%d × %s", it.Quantity, it.SKU)
			}
			e.Detail = strings.Join(items, ", ")
			if d.Currency != "" {
				e.Detail += " — " + money(d.TotalCents, d.Currency)
			}
		case "StockReserved":
			e.Step, e.Kind, e.Title = "Stock", kindOK, "Stock reserved"
		case "StockReservationFailed":
			e.Step, e.Kind, e.Title, e.Detail = "Stock", kindFailure, "Stock reservation failed", d.Reason
		case "PaymentRequested":
			e.Step, e.Kind, e.Title = "Payment", kindForward, "Payment requested"
			e.Detail = fmt.Sprintf("%s, deadline %s", money(d.AmountCents, currency), clock(d.Deadline))
		case "PaymentCharged":
			e.Step, e.Kind, e.Title, e.Detail = "Payment", kindOK, "Payment charged", d.PaymentID
		case "PaymentDeclined":
			e.Step, e.Kind, e.Title, e.Detail = "Payment", kindFailure, "Payment declined", d.Reason
		case "ShipmentRequested":
			e.Step, e.Kind, e.Title = "Shipment", kindForward, "Shipment requested"
			e.Detail = "deadline " + clock(d.Deadline)
		case "ShipmentScheduled":
			e.Step, e.Kind, e.Title = "Shipment", kindOK, "Shipment scheduled"
			e.Detail = strings.TrimSpace(d.Carrier + " " + d.TrackingNumber)
		case "ShipmentFailed":
			e.Step, e.Kind, e.Title, e.Detail = "Shipment", kindFailure, "Shipment failed", d.Reason
		case "CancellationRequested":
			e.Step, e.Kind, e.Title, e.Detail = "Order", kindCancel, "Cancellation requested", d.Reason
		case "StepTimedOut":
			e.Step, e.Kind, e.Title = "Timeout", kindTimeout, "Timed out waiting for "+strings.Join(d.Steps, ", ")
			e.Detail = "deadline " + clock(d.Deadline)
		case "CompensationRequested":
			e.Step, e.Kind, e.Title, e.Detail = "Compensation", kindCompensation, "Compensation requested: "+undoAll(d.Steps), d.Reason
		case "StockReleased":
			e.Step, e.Kind, e.Title = "Compensation", kindCompensation, "Stock released (compensation: release stock)"
		case "PaymentRefunded":
			e.Step, e.Kind, e.Title = "Compensation", kindCompensation, "Payment refunded (compensation: refund payment)"
			if d.PaymentID == "" {
				e.Detail = "nothing had been charged"
			} else {
				e.Detail = fmt.Sprintf("%s, %s", d.PaymentID, money(d.AmountCents, currency))
			}
		case "ShipmentCancelled":
			e.Step, e.Kind, e.Title = "Compensation", kindCompensation, "Shipment cancelled (compensation: cancel shipment)"
			if d.ShipmentID == "" {
				e.Detail = "nothing had been scheduled"
			} else {
				e.Detail = d.ShipmentID
			}
		case "ExtraChargeDetected":
			e.Step, e.Kind, e.Title = "Payment", kindWarning, "Extra charge detected; refund requested"
			e.Detail = fmt.Sprintf("%s, %s", d.PaymentID, money(d.AmountCents, currency))
		case "OrderCompleted":
			e.Step, e.Kind, e.Title = "Order", kindCompleted, "Order completed"
		case "OrderCancelled":
			e.Step, e.Kind, e.Title, e.Detail = "Order", kindEnded, "Order cancelled", d.Reason
		case "OrderRejected":
			e.Step, e.Kind, e.Title, e.Detail = "Order", kindEnded, "Order rejected", d.Reason
		default:
			e.Step, e.Kind, e.Title = "Order", kindOther, ev.Type
		}
		out = append(out, e)
	}
	return out
}
