package inprocess_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/e2e/harness"
	"github.com/orderflow/orderflow/e2e/inprocess"
)

// start runs the system until the test ends.
func start(t *testing.T, cfg inprocess.Config) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sys, err := inprocess.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sys.Stop(); err != nil {
			t.Errorf("stop: got %v, want nil", err)
		}
	})
	return &client{sys: sys, http: &http.Client{Timeout: 15 * time.Second}}
}

// client drives the system through its HTTP APIs, as a user would.
type client struct {
	sys  *inprocess.System
	http *http.Client
}

// do sends a JSON request and decodes a JSON answer into out (unless nil).
func (c *client) do(method, url string, body, out any) (int, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, err
	}
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			return res.StatusCode, fmt.Errorf("%s %s: decode %s: %w", method, url, data, err)
		}
	}
	return res.StatusCode, nil
}

// mustDo is do, failing the test unless the answer is want.
func (c *client) mustDo(t *testing.T, want int, method, url string, body, out any) {
	t.Helper()
	code, err := c.do(method, url, body, out)
	if err != nil || code != want {
		t.Fatalf("%s %s: got %d (%v), want %d", method, url, code, err, want)
	}
}

// admin is the URL of path on a service's admin API.
func (c *client) admin(service, path string) string { return c.sys.AdminURL(service) + path }

// setFault sets a fault flag through the service's admin API, and resets it
// when the test ends.
func (c *client) setFault(t *testing.T, service, name, value string) {
	t.Helper()
	c.mustDo(t, http.StatusOK, http.MethodPut, c.admin(service, "/faults/"+name), map[string]string{"value": value}, nil)
	t.Cleanup(func() {
		if code, err := c.do(http.MethodDelete, c.admin(service, "/faults/"+name), nil, nil); err != nil || code != http.StatusOK {
			t.Errorf("reset fault %s of %s: got %d (%v), want 200", name, service, code, err)
		}
	})
}

// placeAll places n orders of items, eight at a time, and returns their
// ids in order.
func (c *client) placeAll(t *testing.T, n int, items []harness.Item) []string {
	t.Helper()
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			var o harness.Order
			req := harness.OrderRequest{CustomerID: fmt.Sprintf("c-%d", i), Items: items}
			code, err := c.do(http.MethodPost, c.sys.OrderURL()+"/orders", req, &o)
			if err == nil && (code != http.StatusCreated || o.ID == "") {
				err = fmt.Errorf("POST /orders: got %d %+v, want 201 with an id", code, o)
			}
			ids[i], errs[i] = o.ID, err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// orders reads every order (all pages of GET /orders).
func (c *client) orders() (map[string]harness.Order, error) {
	all := map[string]harness.Order{}
	cursor := ""
	for {
		var page struct {
			Orders     []harness.Order `json:"orders"`
			NextCursor string          `json:"next_cursor"`
		}
		u := c.sys.OrderURL() + "/orders?limit=500"
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		if code, err := c.do(http.MethodGet, u, nil, &page); err != nil || code != http.StatusOK {
			return nil, fmt.Errorf("GET /orders: got %d (%v), want 200", code, err)
		}
		for _, o := range page.Orders {
			all[o.ID] = o
		}
		if page.NextCursor == "" {
			return all, nil
		}
		cursor = page.NextCursor
	}
}

// waitOrders polls the orders until every one of ids satisfies ok, and
// returns them; it fails the test after timeout, naming what is left.
func (c *client) waitOrders(t *testing.T, ids []string, timeout time.Duration, what string, ok func(harness.Order) bool) map[string]harness.Order {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		all, err := c.orders()
		if err != nil {
			t.Fatal(err)
		}
		var left []harness.Order
		for _, id := range ids {
			if o := all[id]; !ok(o) {
				left = append(left, o)
			}
		}
		if len(left) == 0 {
			return all
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: got %d of %d orders not %s, e.g. %s %s (step %s, awaiting %v), want none",
				timeout, len(left), len(ids), what, left[0].ID, left[0].Status, left[0].SagaStep, left[0].Awaiting)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eventually polls check until it reports nothing, and reports what it
// still reports after timeout as test errors.
func eventually(t *testing.T, timeout time.Duration, check func() []string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		problems := check()
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			const show = 20
			for i, p := range problems {
				if i == show {
					t.Errorf("… and %d more", len(problems)-show)
					break
				}
				t.Error(p)
			}
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}
