package web

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/pkg/idempotency"
	"github.com/orderflow/orderflow/services/console/internal/upstream"
)

// maxRestock bounds one restock.
const maxRestock = 1_000_000

// stockRow is one SKU of the Stock page.
type stockRow struct {
	upstream.Stock
	Name string
	// Input and Error: a refused restock quantity and why.
	Input string
	Error string
	// Key is the idempotency key of the row's restock form: a new one at
	// each render, but a held restock's own (see heldRestock).
	Key string
	// Held: the row shows a restock whose outcome is unknown.
	Held bool
}

// stockView is the live stock table.
type stockView struct {
	Rows []stockRow
	Down string
	URL  string
	// Held are the restocks whose outcome is unknown; every form and the
	// region's polls carry them on.
	Held []heldRestock
}

// heldRestock is a restock that inventory took without a readable answer:
// it may or may not have been added. Its row keeps its key and quantity
// until Restock is pressed on it again, through polls and other rows'
// restocks, whatever changes in the table meanwhile: with a new key, that
// press would add the units a second time. The console keeps no state of
// its own: the live region's URL, each restock form and the redirect
// after a restock without JavaScript carry the held restocks on
// (heldParams).
type heldRestock struct {
	SKU      string
	Key      string
	Quantity int
}

// Names of the parameters that carry held restocks (stock.html names
// them too): one value of each per restock, in the same order.
const (
	paramHeldSKU = "held_sku"
	paramHeldKey = "held_key"
	paramHeldQty = "held_qty"
)

// parseHeld reads held restocks from params, leaving out any that is not
// one the console would have made; the last for a SKU wins.
func parseHeld(params url.Values) []heldRestock {
	skus, keys, qtys := params[paramHeldSKU], params[paramHeldKey], params[paramHeldQty]
	if len(skus) != len(keys) || len(skus) != len(qtys) {
		return nil // not written by the console
	}
	var held []heldRestock
	for i, sku := range skus {
		n, err := strconv.Atoi(qtys[i])
		if sku == "" || !idempotency.ValidKey(keys[i]) || err != nil || n < 1 || n > maxRestock {
			continue
		}
		held = withHeld(held, heldRestock{SKU: sku, Key: keys[i], Quantity: n})
	}
	return held
}

// heldKeyOfAnother reports whether key is that of the restock of sku held,
// and quantity not its quantity.
func heldKeyOfAnother(held []heldRestock, sku, key string, quantity int) bool {
	for _, h := range held {
		if h.SKU == sku && h.Key == key && h.Quantity != quantity {
			return true
		}
	}
	return false
}

// withHeld returns held with h in place of any restock of h's SKU.
func withHeld(held []heldRestock, h heldRestock) []heldRestock {
	return append(withoutHeld(held, h.SKU), h)
}

// withoutHeld returns held without the restock of sku.
func withoutHeld(held []heldRestock, sku string) []heldRestock {
	out := make([]heldRestock, 0, len(held))
	for _, h := range held {
		if h.SKU != sku {
			out = append(out, h)
		}
	}
	return out
}

// heldParams encodes held as parseHeld reads them.
func heldParams(held []heldRestock) url.Values {
	q := url.Values{}
	for _, h := range held {
		q.Add(paramHeldSKU, h.SKU)
		q.Add(paramHeldKey, h.Key)
		q.Add(paramHeldQty, strconv.Itoa(h.Quantity))
	}
	return q
}

func (s *Server) loadStock(ctx context.Context, held []heldRestock) stockView {
	v := stockView{URL: s.inventory.Client().BaseURL(), Held: held}
	stock, err := s.inventory.Stock(ctx)
	if err != nil {
		v.Down = downText(err)
		return v
	}
	for _, st := range stock {
		r := stockRow{Stock: st, Key: newKey()}
		if p, err := s.cfg.Catalog.Lookup(st.SKU); err == nil {
			r.Name = p.Name
		}
		for _, h := range held {
			if h.SKU == st.SKU {
				r.Key, r.Input, r.Held = h.Key, strconv.Itoa(h.Quantity), true
			}
		}
		v.Rows = append(v.Rows, r)
	}
	return v
}

// withoutFreshKeys is v without the keys made for this render, to sign:
// they change at every poll, and are not what the table shows.
func (v stockView) withoutFreshKeys() stockView {
	rows := make([]stockRow, len(v.Rows))
	for i, r := range v.Rows {
		if !r.Held {
			r.Key = ""
		}
		rows[i] = r
	}
	v.Rows = rows
	return v
}

func (s *Server) stockRegion(p *page, v stockView) (template.HTML, string, error) {
	return s.liveHTMLSigned("stock", "stock-table", pageWith(p, v), pageWith(p, v.withoutFreshKeys()),
		"stock", withQuery("/stock/live", heldParams(v.Held)), s.cfg.Refresh*2, "")
}

func (s *Server) stockPage(c echo.Context) error {
	p := s.newPage(c, "Stock", "stock")
	ctx := c.Request().Context()
	var v stockView
	if err := s.loadWithBanner(ctx, p, func() { v = s.loadStock(ctx, parseHeld(c.QueryParams())) }); err != nil {
		return err
	}
	region, _, err := s.stockRegion(p, v)
	if err != nil {
		return err
	}
	p.Data = region
	return s.writePage(c, "stock", p)
}

func (s *Server) stockLive(c echo.Context) error {
	p := s.newPage(c, "", "stock")
	region, sig, err := s.stockRegion(p, s.loadStock(c.Request().Context(), parseHeld(c.QueryParams())))
	if err != nil {
		return err
	}
	return answerPoll(c, region, sig)
}

func (s *Server) restock(c echo.Context) error {
	ctx := c.Request().Context()
	sku, err := pathParam(c, "sku")
	if err != nil {
		return err
	}
	form, _ := c.FormParams()
	held := parseHeld(form)
	raw := strings.TrimSpace(c.FormValue("quantity"))
	key := c.FormValue("idempotency_key")
	if !idempotency.ValidKey(key) {
		key = newKey()
	}
	status, fl := http.StatusOK, (*flash)(nil)
	rowErr := ""
	n, err := strconv.Atoi(raw)
	switch {
	case err != nil || n < 1 || n > maxRestock:
		rowErr = fmt.Sprintf("Enter a whole number from 1 to %d, not %q.", maxRestock, raw)
		status, fl = http.StatusUnprocessableEntity, flashError(sku+" not restocked: "+rowErr)
	default:
		// A held restock's key names its quantity: another quantity typed
		// over it is another restock, which inventory refuses with that
		// key (422), so it is sent with a key of its own.
		if heldKeyOfAnother(held, sku, key, n) {
			key = newKey()
		}
		st, err := s.inventory.Restock(ctx, sku, n, key)
		prob, isProblem := upstream.AsProblem(err)
		switch {
		case err == nil:
			held = withoutHeld(held, sku)
			fl = flashOK(fmt.Sprintf("%s restocked by %d: %d available.", sku, n, st.Available))
		case isProblem && keyReused(prob):
			// The form was sent before with another quantity (changed
			// while its first restock was on its way): that one stands,
			// this one was not added; the row gets a new key.
			held = withoutHeld(held, sku)
			status = http.StatusUnprocessableEntity
			rowErr = "This form already sent another restock; nothing was added now. Press Restock again to add these units."
			fl = flashError(sku + " not restocked: " + rowErr)
		case isProblem && prob.Status < 500:
			held = withoutHeld(held, sku)
			status = http.StatusUnprocessableEntity
			if prob.Status == http.StatusNotFound {
				status = http.StatusNotFound
			}
			rowErr = prob.Detail
			if rowErr == "" {
				rowErr = prob.Title
			}
			fl = flashError(sku + " not restocked: " + rowErr)
		case upstream.OutcomeUnknown(err):
			held = withHeld(held, heldRestock{SKU: sku, Key: key, Quantity: n})
			status, fl = http.StatusServiceUnavailable, flashError(fmt.Sprintf(
				"%s may or may not be restocked: %s. Press Restock again: the same restock is not added twice.", sku, downText(err)))
		default:
			// Not sent, so not added; a restock held from before stays
			// held, as unknown as it was.
			status, fl = http.StatusServiceUnavailable, flashError(sku+" not restocked: "+downText(err))
		}
	}
	v := s.loadStock(ctx, held)
	for i := range v.Rows {
		if r := &v.Rows[i]; r.SKU == sku && rowErr != "" {
			r.Input, r.Error = raw, rowErr
		}
	}
	if !isHTMX(c) {
		if status == http.StatusOK {
			return redirectWithFlash(c, withQuery("/stock", heldParams(held)), fl)
		}
		p := s.newPage(c, "Stock", "stock")
		region, _, err := s.stockRegion(p, v)
		if err != nil {
			return err
		}
		p.Data, p.Flash, p.Status = region, fl, status
		return s.writePage(c, "stock", p)
	}
	p := s.newPage(c, "", "stock")
	region, _, err := s.stockRegion(p, v)
	if err != nil {
		return err
	}
	return s.writeAction(c, status, region, fl, "")
}
