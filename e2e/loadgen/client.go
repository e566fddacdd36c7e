package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Order statuses of the order API. The last three are terminal.
const (
	StatusPending        = "PENDING"
	StatusStockReserved  = "STOCK_RESERVED"
	StatusPaymentCharged = "PAYMENT_CHARGED"
	StatusCancelling     = "CANCELLING"
	StatusCompleted      = "COMPLETED"
	StatusCancelled      = "CANCELLED"
	StatusRejected       = "REJECTED"
)

// TerminalStatuses are the statuses an order never leaves.
var TerminalStatuses = []string{StatusCompleted, StatusCancelled, StatusRejected}

// IsTerminal reports whether status is terminal.
func IsTerminal(status string) bool {
	switch status {
	case StatusCompleted, StatusCancelled, StatusRejected:
		return true
	}
	return false
}

// Line is one item of an order request.
type Line struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// OrderRequest is the body of POST /orders.
type OrderRequest struct {
	CustomerID string `json:"customer_id"`
	Items      []Line `json:"items"`
}

// Order is the part of the order API's order view that loadgen reads.
type Order struct {
	ID         string     `json:"id"`
	Status     string     `json:"status"`
	Reason     string     `json:"reason,omitempty"`
	PlacedAt   time.Time  `json:"placed_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// finished is when the order became terminal: finished_at, or updated_at
// for a server that does not set it.
func (o Order) finished() time.Time {
	if o.FinishedAt != nil && !o.FinishedAt.IsZero() {
		return *o.FinishedAt
	}
	return o.UpdatedAt
}

type orderPage struct {
	Orders     []Order `json:"orders"`
	NextCursor string  `json:"next_cursor"`
}

// Client talks to the order API.
type Client struct {
	base string
	http *http.Client
}

// NewClient returns a client of the order API at base (http://host:port)
// whose connection pool keeps up to conns idle connections, so that a
// steady load reuses them instead of opening one per request.
func NewClient(base string, conns int) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("order API URL %q: want http://HOST:PORT", base)
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns + 16,
		MaxIdleConnsPerHost: conns + 16,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Client{
		base: strings.TrimRight(base, "/"),
		http: &http.Client{Transport: tr, Timeout: 30 * time.Second},
	}, nil
}

// BaseURL is the order API's base URL.
func (c *Client) BaseURL() string { return c.base }

// Close releases the client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// StatusError is a response with an unexpected status.
type StatusError struct {
	Code int
	Body string
	// RetryAfter is the wait the response's Retry-After header asked for,
	// as sent (not capped); HasRetryAfter tells it from an absent or
	// unparsable header, since "Retry-After: 0" (retry now) is valid.
	RetryAfter    time.Duration
	HasRetryAfter bool
}

func (e *StatusError) Error() string {
	if e.HasRetryAfter {
		return fmt.Sprintf("status %d (retry after %s): %s", e.Code, e.RetryAfter, e.Body)
	}
	return fmt.Sprintf("status %d: %s", e.Code, e.Body)
}

// Refused reports whether the server turned the request away for now and
// said when to send it again: a 503 or 429 with a usable Retry-After, as
// the order service's admission control answers while too many orders are
// open. Such a request is not a failure of the server but push-back.
func (e *StatusError) Refused() bool {
	return e.HasRetryAfter && (e.Code == http.StatusServiceUnavailable || e.Code == http.StatusTooManyRequests)
}

// refusal returns the wait a refused request asked for (see
// StatusError.Refused), and whether err is one.
func refusal(err error) (time.Duration, bool) {
	var se *StatusError
	if errors.As(err, &se) && se.Refused() {
		return se.RetryAfter, true
	}
	return 0, false
}

// maxRetryAfterSeconds bounds delta-seconds before they become a Duration,
// which would overflow past about 292 years; RFC 9111 §1.2.2 takes 2^31 as
// the largest value worth telling apart.
const maxRetryAfterSeconds = 1 << 31

// parseRetryAfter parses a Retry-After value (RFC 9110 §10.2.3): either
// delta-seconds or an HTTP-date, which is turned into a wait from now (0
// if it has passed). It reports false for an empty, negative or otherwise
// unparsable value, which the caller should ignore.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if strings.Trim(v, "0123456789") == "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > maxRetryAfterSeconds {
			// Only digits, so err is a range error: a very long wait.
			n = maxRetryAfterSeconds
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v) // IMF-fixdate, RFC 850 or asctime, as RFC 9110 asks
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// retryAfter parses resp's Retry-After. An HTTP-date is measured from the
// response's own Date when it has one, so that the server's clock being
// off from ours does not lengthen or shorten the wait.
func retryAfter(resp *http.Response) (time.Duration, bool) {
	now := time.Now()
	if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		now = d
	}
	return parseRetryAfter(resp.Header.Get("Retry-After"), now)
}

// retryable reports whether a failed place request may be sent again with
// the same idempotency key.
func retryable(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code == http.StatusServiceUnavailable || se.Code == http.StatusTooManyRequests ||
			se.Code == http.StatusConflict || se.Code >= 500
	}
	return !errors.Is(err, context.Canceled)
}

// Place sends POST /orders with an Idempotency-Key and returns the order.
func (c *Client) Place(ctx context.Context, key string, req OrderRequest) (Order, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return Order{}, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/orders", bytes.NewReader(body))
	if err != nil {
		return Order{}, err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Idempotency-Key", key)
	var o Order
	if err := c.do(hr, &o, http.StatusCreated, http.StatusOK); err != nil {
		return Order{}, fmt.Errorf("place order: %w", err)
	}
	return o, nil
}

// Get returns one order.
func (c *Client) Get(ctx context.Context, id string) (Order, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/orders/"+url.PathEscape(id), nil)
	if err != nil {
		return Order{}, err
	}
	var o Order
	if err := c.do(hr, &o, http.StatusOK); err != nil {
		return Order{}, fmt.Errorf("get order %s: %w", id, err)
	}
	return o, nil
}

// List returns one page of the orders in status placed at or after since
// (zero: any time), newest first.
func (c *Client) List(ctx context.Context, status string, since time.Time, limit int, cursor string) ([]Order, string, error) {
	q := url.Values{"status": {status}, "limit": {strconv.Itoa(limit)}}
	if !since.IsZero() {
		q.Set("placed_since", since.UTC().Format(time.RFC3339Nano))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/orders?"+q.Encode(), nil)
	if err != nil {
		return nil, "", err
	}
	var p orderPage
	if err := c.do(hr, &p, http.StatusOK); err != nil {
		return nil, "", fmt.Errorf("list %s orders: %w", status, err)
	}
	return p.Orders, p.NextCursor, nil
}

// Ready waits until GET /readyz answers 200, or ctx ends.
func (c *Client) Ready(ctx context.Context) error {
	for {
		hr, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/readyz", nil)
		if err != nil {
			return err
		}
		err = c.do(hr, nil, http.StatusOK)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("order API %s not ready: %w (last: %v)", c.base, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Client) do(hr *http.Request, v any, want ...int) error {
	resp, err := c.http.Do(hr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	ok := false
	for _, w := range want {
		ok = ok || resp.StatusCode == w
	}
	if !ok {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		se := &StatusError{Code: resp.StatusCode, Body: strings.TrimSpace(string(b))}
		se.RetryAfter, se.HasRetryAfter = retryAfter(resp)
		return se
	}
	if v == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}
