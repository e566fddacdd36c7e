package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Item is an order line as the API takes it.
type Item struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// Address is a shipping address as the API takes it.
type Address struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code,omitempty"`
	Country    string `json:"country"`
}

// OrderRequest is POST /orders. An empty IdempotencyKey gets a random one,
// so that PlaceOrder can retry safely.
type OrderRequest struct {
	CustomerID      string   `json:"customer_id"`
	Items           []Item   `json:"items"`
	ShippingAddress *Address `json:"shipping_address,omitempty"`
	IdempotencyKey  string   `json:"-"`
}

// OrderItem is a priced order line.
type OrderItem struct {
	SKU            string `json:"sku"`
	Quantity       int    `json:"quantity"`
	UnitPriceCents int64  `json:"unit_price_cents"`
}

// Order is the order API's view of an order.
type Order struct {
	ID             string      `json:"id"`
	CustomerID     string      `json:"customer_id"`
	Status         string      `json:"status"`
	Reason         string      `json:"reason"`
	Items          []OrderItem `json:"items"`
	Currency       string      `json:"currency"`
	TotalCents     int64       `json:"total_cents"`
	SagaStep       string      `json:"saga_step"`
	Awaiting       []string    `json:"awaiting"`
	PaymentID      string      `json:"payment_id"`
	ShipmentID     string      `json:"shipment_id"`
	TrackingNumber string      `json:"tracking_number"`
	PlacedAt       time.Time   `json:"placed_at"`
	UpdatedAt      time.Time   `json:"updated_at"`
	FinishedAt     *time.Time  `json:"finished_at"`
	TraceID        string      `json:"trace_id"`
	Version        int         `json:"version"`
}

// Order statuses.
const (
	StatusPending        = "PENDING"
	StatusStockReserved  = "STOCK_RESERVED"
	StatusPaymentCharged = "PAYMENT_CHARGED"
	StatusCancelling     = "CANCELLING"
	StatusCompleted      = "COMPLETED"
	StatusCancelled      = "CANCELLED"
	StatusRejected       = "REJECTED"
)

// Terminal reports whether status never changes again.
func Terminal(status string) bool {
	return status == StatusCompleted || status == StatusCancelled || status == StatusRejected
}

// Event is one stored event of an order's stream.
type Event struct {
	Version  int             `json:"version"`
	Type     string          `json:"type"`
	Data     json.RawMessage `json:"data"`
	Metadata map[string]any  `json:"metadata"`
	// RecordedAt is when the order service stored the event (its clock,
	// millisecond precision).
	RecordedAt time.Time `json:"recorded_at"`
}

// Problem is an RFC 9457 answer.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Field  string `json:"field"`
}

// HTTPError is a non-2xx answer.
type HTTPError struct {
	Method, URL string
	Status      int
	Body        string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, strings.TrimSpace(e.Body))
}

// StatusOf returns the HTTP status of an *HTTPError, else 0.
func StatusOf(err error) int {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Status
	}
	return 0
}

// Client talks to the system's order API and admin APIs. Every call
// retries while the target process is unreachable (being restarted, say)
// until its context ends; an HTTP answer other than 2xx is returned as an
// *HTTPError at once, except 502, 503 and 504, which are retried too.
type Client struct {
	sys *System
}

var apiClient = &http.Client{Timeout: 15 * time.Second}

// call sends one request to the process's base URL (read anew on every
// try: a restarted process listens elsewhere) and decodes a 2xx JSON answer
// into out (unless nil).
func (c *Client) call(ctx context.Context, p *Process, api bool, method, path string, body any, header map[string]string, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	backoff := 20 * time.Millisecond
	for {
		base := p.AdminURL()
		if api {
			base = p.HTTPURL()
		}
		status, data, err := c.once(ctx, method, base+path, payload, header)
		switch {
		case err == nil && status >= 200 && status < 300:
			if out == nil || len(data) == 0 {
				return nil
			}
			if err := json.Unmarshal(data, out); err != nil {
				return fmt.Errorf("%s %s: decode %s: %w", method, path, data, err)
			}
			return nil
		case err == nil && status != http.StatusBadGateway && status != http.StatusServiceUnavailable && status != http.StatusGatewayTimeout:
			return &HTTPError{Method: method, URL: base + path, Status: status, Body: string(data)}
		}
		if ctx.Err() != nil {
			if err == nil {
				err = &HTTPError{Method: method, URL: base + path, Status: status, Body: string(data)}
			}
			return fmt.Errorf("%s %s on %s: gave up: %w (last: %v)", method, path, p.Name(), ctx.Err(), err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

func (c *Client) once(ctx context.Context, method, u string, payload []byte, header map[string]string) (int, []byte, error) {
	var r io.Reader
	if payload != nil {
		r = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return 0, nil, err
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, data, nil
}

// NewKey returns a random idempotency key.
func NewKey() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "e2e-" + hex.EncodeToString(b[:])
}

// PlaceOrder places an order, retrying with the same Idempotency-Key until
// the order service answers (so an order is placed at most once even if
// the service dies mid-request), and returns the order. A refused request
// (4xx) is an *HTTPError.
func (c *Client) PlaceOrder(ctx context.Context, req OrderRequest) (Order, error) {
	req = withOrderDefaults(req)
	var o Order
	err := c.call(ctx, c.sys.Service(OrderService), true, http.MethodPost, "/orders", req,
		map[string]string{"Idempotency-Key": req.IdempotencyKey}, &o)
	return o, err
}

// PlaceOrderOnce places an order with one request, not sent again
// whatever the answer (as a client that does not retry): it returns the
// order and the status, or an *HTTPError for an answer other than 2xx.
func (c *Client) PlaceOrderOnce(ctx context.Context, req OrderRequest) (Order, int, error) {
	req = withOrderDefaults(req)
	payload, err := json.Marshal(req)
	if err != nil {
		return Order{}, 0, err
	}
	u := c.sys.Service(OrderService).HTTPURL() + "/orders"
	status, data, err := c.once(ctx, http.MethodPost, u, payload, map[string]string{"Idempotency-Key": req.IdempotencyKey})
	if err != nil {
		return Order{}, 0, err
	}
	if status < 200 || status > 299 {
		return Order{}, status, &HTTPError{Method: http.MethodPost, URL: u, Status: status, Body: string(data)}
	}
	var o Order
	if err := json.Unmarshal(data, &o); err != nil {
		return Order{}, status, fmt.Errorf("POST %s: decode %s: %w", u, data, err)
	}
	return o, status, nil
}

// withOrderDefaults gives req a random Idempotency-Key and the e2e
// customer when it has none.
func withOrderDefaults(req OrderRequest) OrderRequest {
	if req.IdempotencyKey == "" {
		req.IdempotencyKey = NewKey()
	}
	if req.CustomerID == "" {
		req.CustomerID = "customer-e2e"
	}
	return req
}

// GetOrder returns one order.
func (c *Client) GetOrder(ctx context.Context, id string) (Order, error) {
	var o Order
	err := c.call(ctx, c.sys.Service(OrderService), true, http.MethodGet, "/orders/"+url.PathEscape(id), nil, nil, &o)
	return o, err
}

// CancelOrder asks to cancel an order.
func (c *Client) CancelOrder(ctx context.Context, id, reason string) (Order, error) {
	var o Order
	err := c.call(ctx, c.sys.Service(OrderService), true, http.MethodPost, "/orders/"+url.PathEscape(id)+"/cancel",
		map[string]string{"reason": reason}, nil, &o)
	return o, err
}

// Events returns an order's event stream.
func (c *Client) Events(ctx context.Context, id string) ([]Event, error) {
	var body struct {
		Events []Event `json:"events"`
	}
	err := c.call(ctx, c.sys.Service(OrderService), true, http.MethodGet, "/orders/"+url.PathEscape(id)+"/events", nil, nil, &body)
	return body.Events, err
}

// Orders lists every order (all pages).
func (c *Client) Orders(ctx context.Context) ([]Order, error) {
	var all []Order
	cursor := ""
	for {
		var page struct {
			Orders     []Order `json:"orders"`
			NextCursor string  `json:"next_cursor"`
		}
		path := "/orders?limit=500"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		if err := c.call(ctx, c.sys.Service(OrderService), true, http.MethodGet, path, nil, nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Orders...)
		if page.NextCursor == "" {
			return all, nil
		}
		cursor = page.NextCursor
	}
}

// Counts returns how many orders are in each status, and the total.
func (c *Client) Counts(ctx context.Context) (map[string]int64, int64, error) {
	var body struct {
		Counts map[string]int64 `json:"counts"`
		Total  int64            `json:"total"`
	}
	err := c.call(ctx, c.sys.Service(OrderService), true, http.MethodGet, "/orders/counts", nil, nil, &body)
	return body.Counts, body.Total, err
}

// WaitTerminal polls the orders until every one is terminal or ctx ends,
// and returns their last views.
func (c *Client) WaitTerminal(ctx context.Context, ids ...string) (map[string]Order, error) {
	last := map[string]Order{}
	pending := append([]string(nil), ids...)
	for {
		var still []string
		for _, id := range pending {
			o, err := c.GetOrder(ctx, id)
			if err != nil {
				return last, err
			}
			last[id] = o
			if !Terminal(o.Status) {
				still = append(still, id)
			}
		}
		if len(still) == 0 {
			return last, nil
		}
		pending = still
		select {
		case <-ctx.Done():
			var desc []string
			for _, id := range still[:min(len(still), 10)] {
				desc = append(desc, fmt.Sprintf("%s %s awaiting %v", id, last[id].Status, last[id].Awaiting))
			}
			return last, fmt.Errorf("%d of %d orders not terminal: %s", len(still), len(ids), strings.Join(desc, "; "))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WaitAllTerminal polls the order counts until total orders exist and
// none is in flight, or ctx ends; it returns the counts.
func (c *Client) WaitAllTerminal(ctx context.Context, total int64) (map[string]int64, error) {
	for {
		counts, n, err := c.Counts(ctx)
		if err != nil {
			return counts, err
		}
		inFlight := n - counts[StatusCompleted] - counts[StatusCancelled] - counts[StatusRejected]
		if n == total && inFlight == 0 {
			return counts, nil
		}
		select {
		case <-ctx.Done():
			return counts, fmt.Errorf("orders: %d of %d exist, %d in flight (%v)", n, total, inFlight, counts)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// AdminGet decodes GET path on a service's admin API into out.
func (c *Client) AdminGet(ctx context.Context, service, path string, out any) error {
	return c.call(ctx, c.sys.Service(service), false, http.MethodGet, path, nil, nil, out)
}

// AdminDo sends a request with a JSON body to a service's admin API.
func (c *Client) AdminDo(ctx context.Context, service, method, path string, body, out any) error {
	return c.call(ctx, c.sys.Service(service), false, method, path, body, nil, out)
}

// SetFault sets a fault flag of a running service (PUT /faults/{name}).
// The value is a string, number or bool, as the admin API takes it. A
// restarted service starts again from its environment.
func (c *Client) SetFault(ctx context.Context, service, name string, value any) error {
	return c.AdminDo(ctx, service, http.MethodPut, "/faults/"+url.PathEscape(name), map[string]any{"value": value}, nil)
}

// ResetFault puts a fault flag back to its default.
func (c *Client) ResetFault(ctx context.Context, service, name string) error {
	return c.AdminDo(ctx, service, http.MethodDelete, "/faults/"+url.PathEscape(name), nil, nil)
}

// DeadLetter is a dead letter as the admin API lists it.
type DeadLetter struct {
	ID            int64             `json:"id"`
	MessageUUID   string            `json:"message_uuid"`
	Topic         string            `json:"topic"`
	ConsumerGroup string            `json:"consumer_group"`
	Payload       *string           `json:"payload"`
	Metadata      map[string]string `json:"metadata"`
	Attempts      int               `json:"attempts"`
	LastError     string            `json:"last_error"`
	FirstFailedAt time.Time         `json:"first_failed_at"`
	LastFailedAt  time.Time         `json:"last_failed_at"`
	DeadAt        time.Time         `json:"dead_at"`
}

// DeadLetters lists the dead letters of the shared queue (through the
// order service's admin API; every service sees the same store), filtered
// by topic and group when not empty.
func (c *Client) DeadLetters(ctx context.Context, topic, group string) ([]DeadLetter, error) {
	q := url.Values{"limit": {"1000"}}
	if topic != "" {
		q.Set("topic", topic)
	}
	if group != "" {
		q.Set("group", group)
	}
	var out []DeadLetter
	err := c.AdminGet(ctx, OrderService, "/dlq?"+q.Encode(), &out)
	return out, err
}

// TopicStats is one topic of GET /queue/stats.
type TopicStats struct {
	Topic       string       `json:"topic"`
	Stored      int64        `json:"stored"`
	DeadLetters int64        `json:"dead_letters"`
	Groups      []GroupStats `json:"groups"`
}

// GroupStats is one consumer group's view of a topic.
type GroupStats struct {
	ConsumerGroup string `json:"consumer_group"`
	Depth         int64  `json:"depth"`
	InFlight      int64  `json:"in_flight"`
	// Abandoned were in flight in a consumer that died (queue
	// backend.GroupStats.Abandoned).
	Abandoned int64 `json:"abandoned"`
	Retrying  int64 `json:"retrying"`
}

// QueueStats returns the shared queue's statistics.
func (c *Client) QueueStats(ctx context.Context) ([]TopicStats, error) {
	return c.QueueStatsVia(ctx, OrderService)
}

// QueueStatsVia returns the shared queue's statistics as service's admin
// API reads them (every service reads the same queue): to look at the
// queue while another service, the order service say, is down.
func (c *Client) QueueStatsVia(ctx context.Context, service string) ([]TopicStats, error) {
	var out []TopicStats
	err := c.AdminGet(ctx, service, "/queue/stats", &out)
	return out, err
}

// Queuectl runs the queuectl binary against the system's queue and returns
// its standard output.
func (c *Client) Queuectl(ctx context.Context, args ...string) (string, error) {
	full := append([]string{"--queue-url", c.sys.queueURL}, args...)
	cmd := exec.CommandContext(ctx, c.sys.bins.Path("queuectl"), full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("queuectl %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// Metrics returns a service's GET /metrics (Prometheus text format).
func (c *Client) Metrics(ctx context.Context, service string) (string, error) {
	p := c.sys.Service(service)
	for {
		status, data, err := c.once(ctx, http.MethodGet, p.AdminURL()+"/metrics", nil, nil)
		if err == nil && status == http.StatusOK {
			return string(data), nil
		}
		if err == nil {
			return "", &HTTPError{Method: http.MethodGet, URL: p.AdminURL() + "/metrics", Status: status, Body: string(data)}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("metrics of %s: %w (last: %v)", service, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Sample is one sample of the Prometheus text format.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// MetricSamples returns the samples of the metric called name in a
// Prometheus text exposition (simple label values only: no escaped quotes).
func MetricSamples(text, name string) []Sample {
	var out []Sample
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		labels := map[string]string{}
		if strings.HasPrefix(rest, "{") {
			end := strings.Index(rest, "}")
			if end < 0 {
				continue
			}
			for _, kv := range strings.Split(rest[1:end], ",") {
				k, v, ok := strings.Cut(kv, "=")
				if ok {
					labels[strings.TrimSpace(k)] = strings.Trim(v, `"`)
				}
			}
			rest = rest[end+1:]
		} else if !strings.HasPrefix(rest, " ") {
			continue // another metric sharing the prefix
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		out = append(out, Sample{Labels: labels, Value: v})
	}
	return out
}

// MessagesHandled sums a service's orderflow_messages_handled_total samples
// with the given outcome ("ok", "failed", "duplicate", …) over every topic,
// from its /metrics text.
func MessagesHandled(text, outcome string) int {
	n := 0
	for _, s := range MetricSamples(text, "orderflow_messages_handled_total") {
		if s.Labels["outcome"] == outcome {
			n += int(s.Value)
		}
	}
	return n
}
