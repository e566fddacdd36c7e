package web

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
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
	// Key is the idempotency key of the row's restock form: a new one for
	// each restock, but the same again after a restock whose outcome is
	// unknown, so that pressing Restock again does not add twice.
	Key string
}

// stockView is the live stock table.
type stockView struct {
	Rows []stockRow
	Down string
	URL  string
}

func (s *Server) loadStock(ctx context.Context) stockView {
	v := stockView{URL: s.inventory.Client().BaseURL()}
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
		v.Rows = append(v.Rows, r)
	}
	return v
}

func (s *Server) stockRegion(p *page, v stockView) (template.HTML, error) {
	h, _, err := s.liveHTML("stock", "stock-table", pageWith(p, v), "stock", "/stock/live", s.cfg.Refresh*2, "")
	return h, err
}

func (s *Server) stockPage(c echo.Context) error {
	p := s.newPage(c, "Stock", "stock")
	var v stockView
	if err := s.loadWithBanner(c.Request().Context(), p, func() { v = s.loadStock(c.Request().Context()) }); err != nil {
		return err
	}
	region, err := s.stockRegion(p, v)
	if err != nil {
		return err
	}
	p.Data = region
	return s.writePage(c, "stock", p)
}

func (s *Server) stockLive(c echo.Context) error {
	p := s.newPage(c, "", "stock")
	return s.writeLive(c, "stock", "stock-table", pageWith(p, s.loadStock(c.Request().Context())), "stock", "/stock/live", s.cfg.Refresh*2, "")
}

func (s *Server) restock(c echo.Context) error {
	ctx := c.Request().Context()
	sku, err := pathParam(c, "sku")
	if err != nil {
		return err
	}
	raw := strings.TrimSpace(c.FormValue("quantity"))
	key := c.FormValue("idempotency_key")
	if !idempotency.ValidKey(key) {
		key = newKey()
	}
	status, fl := http.StatusOK, (*flash)(nil)
	rowErr, keepKey := "", false
	n, err := strconv.Atoi(raw)
	switch {
	case err != nil || n < 1 || n > maxRestock:
		rowErr = fmt.Sprintf("Enter a whole number from 1 to %d, not %q.", maxRestock, raw)
		status, fl = http.StatusUnprocessableEntity, flashError(sku+" not restocked: "+rowErr)
	default:
		st, err := s.inventory.Restock(ctx, sku, n, key)
		prob, isProblem := upstream.AsProblem(err)
		switch {
		case err == nil:
			fl = flashOK(fmt.Sprintf("%s restocked by %d: %d available.", sku, n, st.Available))
		case isProblem && prob.Status < 500:
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
			keepKey = true
			status, fl = http.StatusServiceUnavailable, flashError(fmt.Sprintf(
				"%s may or may not be restocked: %s. Press Restock again: the same restock is not added twice.", sku, downText(err)))
		default:
			status, fl = http.StatusServiceUnavailable, flashError(sku+" not restocked: "+downText(err))
		}
	}
	v := s.loadStock(ctx)
	for i := range v.Rows {
		if r := &v.Rows[i]; r.SKU == sku && (rowErr != "" || keepKey) {
			r.Input, r.Error = raw, rowErr
			if keepKey {
				r.Key = key
			}
		}
	}
	if !isHTMX(c) {
		if status == http.StatusOK {
			return redirectWithFlash(c, "/stock", fl)
		}
		p := s.newPage(c, "Stock", "stock")
		region, err := s.stockRegion(p, v)
		if err != nil {
			return err
		}
		p.Data, p.Flash, p.Status = region, fl, status
		return s.writePage(c, "stock", p)
	}
	p := s.newPage(c, "", "stock")
	region, err := s.stockRegion(p, v)
	if err != nil {
		return err
	}
	return s.writeAction(c, status, region, fl, "")
}
