package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderflow/orderflow/pkg/idempotency"
	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/services/console/internal/upstream"
)

// ---- fake order API ---------------------------------------------------------------

type placed struct {
	Body upstream.PlaceOrder
	Key  string
}

// fakeOrders is an in-memory order API with the routes the console uses.
type fakeOrders struct {
	mu        sync.Mutex
	orders    []upstream.Order // newest first
	events    map[string][]upstream.Event
	placed    []placed
	listQuery url.Values
	cancels   []string
	// hang makes placing and cancelling do their work, then never answer.
	hang bool
	// unreadable makes a change that succeeds answer text/plain "ok".
	unreadable bool
}

// unreadableSuccess runs h, but when unreadable() answers a change (any
// method but GET) that succeeded with its status and text/plain "ok": the
// change is made, and its answer is not the JSON the console reads.
func unreadableSuccess(h http.Handler, unreadable func() bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || !unreadable() {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code < 200 || rec.Code > 299 {
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(rec.Code)
		_, _ = io.WriteString(w, "ok")
	})
}

// hangAfter, when hang is set, holds the answer until the client gives
// up: the work is done, the answer never comes.
func hangAfter(r *http.Request, hang bool) {
	if hang {
		<-r.Context().Done()
	}
}

// hanging reads a flag (hang, unreadable) under mu.
func hanging(mu *sync.Mutex, hang *bool) bool {
	mu.Lock()
	defer mu.Unlock()
	return *hang
}

func newFakeOrders() *fakeOrders { return &fakeOrders{events: map[string][]upstream.Event{}} }

// add stores an order with its events.
func (f *fakeOrders) add(o upstream.Order, evs ...upstream.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.orders = append([]upstream.Order{o}, f.orders...)
	f.events[o.ID] = evs
}

func (f *fakeOrders) setStatus(id, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.orders {
		if f.orders[i].ID == id {
			f.orders[i].Status = status
		}
	}
}

// seen returns copies of what the fake was asked.
func (f *fakeOrders) seen() (placedOrders []placed, cancels []string, listQuery url.Values) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]placed(nil), f.placed...), append([]string(nil), f.cancels...), f.listQuery
}

// findLocked is find taking the lock.
func (f *fakeOrders) findLocked(id string) (upstream.Order, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.find(id)
}

func (f *fakeOrders) find(id string) (upstream.Order, bool) {
	for _, o := range f.orders {
		if o.ID == id {
			return o, true
		}
	}
	return upstream.Order{}, false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeProblem(w http.ResponseWriter, p upstream.Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func (f *fakeOrders) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		var body upstream.PlaceOrder
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeProblem(w, upstream.Problem{Status: 400, Title: "Malformed request", Detail: err.Error()})
			return
		}
		if body.CustomerID == "reject-me" {
			writeProblem(w, upstream.Problem{Status: 422, Title: "Invalid request", Detail: "invalid order",
				Errors: []upstream.FieldProblem{{Field: "customer_id", Detail: "is blocked"}, {Field: "items[0].quantity", Detail: "must be at most 3"}}})
			return
		}
		if body.CustomerID == "explode" {
			writeProblem(w, upstream.Problem{Status: 500, Title: "Internal Server Error"})
			return
		}
		f.mu.Lock()
		key := r.Header.Get("Idempotency-Key")
		for i, p := range f.placed {
			if key == "" || p.Key != key {
				continue
			}
			f.mu.Unlock()
			if fmt.Sprint(p.Body) != fmt.Sprint(body) { // as the order API refuses a key reused
				writeProblem(w, upstream.Problem{Status: 422, Type: idempotency.ProblemTypeKeyReused, Title: "Idempotency key reused",
					Detail: "idempotency key reused with a different request",
					Errors: []upstream.FieldProblem{{Field: "Idempotency-Key", Detail: "was used for a different request"}}})
				return
			}
			o, _ := f.findLocked(fmt.Sprintf("ord-%d", i+1))
			writeJSON(w, http.StatusCreated, o)
			return
		}
		f.placed = append(f.placed, placed{Body: body, Key: key})
		id := fmt.Sprintf("ord-%d", len(f.placed))
		f.mu.Unlock()
		o := upstream.Order{ID: id, CustomerID: body.CustomerID, Status: upstream.StatusPending, Currency: "EUR",
			TotalCents: 1500, PlacedAt: time.Now(), UpdatedAt: time.Now(), TraceID: "trace-" + id}
		for _, l := range body.Items {
			o.Items = append(o.Items, upstream.Item{SKU: l.SKU, Quantity: l.Quantity, UnitPriceCents: 1500})
		}
		f.add(o, upstream.Event{Version: 1, Type: "OrderPlaced", Data: json.RawMessage(`{}`), RecordedAt: o.PlacedAt})
		hangAfter(r, hanging(&f.mu, &f.hang))
		writeJSON(w, http.StatusCreated, o)
	})
	mux.HandleFunc("GET /orders", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.listQuery = r.URL.Query()
		if r.URL.Query().Get("cursor") == "bad" {
			writeProblem(w, upstream.Problem{Status: 422, Title: "Invalid request", Detail: "cursor: invalid cursor", Field: "cursor"})
			return
		}
		st := r.URL.Query().Get("status")
		out := []upstream.Order{}
		for _, o := range f.orders {
			if st == "" || o.Status == st {
				out = append(out, o)
			}
		}
		writeJSON(w, http.StatusOK, upstream.OrderPage{Orders: out})
	})
	mux.HandleFunc("GET /orders/counts", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		c := upstream.Counts{Counts: map[string]int64{}}
		for _, o := range f.orders {
			c.Counts[o.Status]++
			c.Total++
		}
		writeJSON(w, http.StatusOK, c)
	})
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		o, ok := f.find(r.PathValue("id"))
		if !ok {
			writeProblem(w, upstream.Problem{Status: 404, Title: "Order not found"})
			return
		}
		writeJSON(w, http.StatusOK, o)
	})
	mux.HandleFunc("GET /orders/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.find(r.PathValue("id")); !ok {
			writeProblem(w, upstream.Problem{Status: 404, Title: "Order not found"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"order_id": r.PathValue("id"), "events": f.events[r.PathValue("id")]})
	})
	mux.HandleFunc("POST /orders/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Reason string `json:"reason"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		defer f.mu.Unlock()
		id := r.PathValue("id")
		o, ok := f.find(id)
		switch {
		case !ok:
			writeProblem(w, upstream.Problem{Status: 404, Title: "Order not found"})
			return
		case !upstream.IsCancellable(o.Status) && o.Status != upstream.StatusCancelling:
			writeProblem(w, upstream.Problem{Status: 409, Title: "Order cannot be cancelled",
				Detail: "order cannot be cancelled: order " + id + " is " + o.Status})
			return
		}
		f.cancels = append(f.cancels, id+":"+body.Reason)
		for i := range f.orders {
			if f.orders[i].ID == id {
				f.orders[i].Status = upstream.StatusCancelling
				o = f.orders[i]
			}
		}
		if f.hang {
			f.mu.Unlock()
			hangAfter(r, true)
			f.mu.Lock()
		}
		writeJSON(w, http.StatusOK, o)
	})
	return unreadableSuccess(mux, func() bool { return hanging(&f.mu, &f.unreadable) })
}

// ---- fake admin API ---------------------------------------------------------------

// fakeAdmin is one service's admin API: fault flags, and stock for
// inventory.
type fakeAdmin struct {
	mu       sync.Mutex
	flags    []upstream.Fault
	stock    []upstream.Stock
	sets     []string
	resets   []string
	restocks []string
	// restockKeys are the idempotency keys of the restocks applied, each
	// with its SKU and quantity: as inventory does, one sent again with
	// them is a replay, applied once; with others, a 422.
	restockKeys map[string]string
	// provider is the provider route of payment (/gateway) and shipping
	// (/carrier); records its books by order id; providerStatus, when
	// set, is its error answer.
	provider       string
	records        map[string]upstream.ProviderRecord
	providerStatus int
	providerAsked  []string
	// hang makes setting a flag and restocking do their work, then never
	// answer.
	hang bool
	// unreadable makes a change that succeeds answer text/plain "ok".
	unreadable bool
	// outbox is what GET /outbox answers as pending.
	outbox int64
	// ghost is a flag GET /faults lists that the routes changing a flag do
	// not know, as one removed between the two calls.
	ghost string
}

// fakeMaxDuration is the longest duration the fake admin APIs take.
const fakeMaxDuration = 5 * time.Minute

func flag(name, typ, def string) upstream.Fault {
	return upstream.Fault{Name: name, Type: typ, Value: def, Default: def, Description: "the " + name + " flag",
		Env: strings.ToUpper(name), Source: "default"}
}

func newFakeAdmin(service string) *fakeAdmin {
	a := &fakeAdmin{flags: []upstream.Fault{
		flag("crash_after_commit", upstream.FaultBool, "false"),
		flag("handler_latency", upstream.FaultDuration, "0s"),
		flag("poison", upstream.FaultBool, "false"),
	}}
	switch service {
	case ServicePayment:
		a.flags = append(a.flags, flag("payment_decline_rate", upstream.FaultRate, "0"), flag("payment_latency", upstream.FaultDuration, "0s"))
		a.provider, a.records = "/gateway", map[string]upstream.ProviderRecord{}
	case ServiceShipping:
		a.provider, a.records = "/carrier", map[string]upstream.ProviderRecord{}
	case ServiceInventory:
		a.flags = append(a.flags, flag("inventory_out_of_stock_skus", upstream.FaultString, ""))
		a.stock = []upstream.Stock{
			{SKU: "SKU-1", Available: 990, Reserved: 10, Initial: 1000},
			{SKU: "SKU-5", Available: 3, Reserved: 7, Initial: 10},
		}
	}
	return a
}

// calls returns copies of the changes the fake was asked for.
func (a *fakeAdmin) calls() (sets, resets, restocks []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.sets...), append([]string(nil), a.resets...), append([]string(nil), a.restocks...)
}

// setRecord puts a record in the provider's books.
func (a *fakeAdmin) setRecord(r upstream.ProviderRecord) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.records[r.OrderID] = r
}

// failProvider makes the provider route answer status (0: answer again).
func (a *fakeAdmin) failProvider(status int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.providerStatus = status
}

// askedProvider returns the order_id queries the provider route received.
func (a *fakeAdmin) askedProvider() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.providerAsked...)
}

// setValue changes a flag behind the console's back.
func (a *fakeAdmin) setValue(name, value string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range a.flags {
		if a.flags[i].Name == name {
			a.flags[i].Value = value
		}
	}
}

func (a *fakeAdmin) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	mux.HandleFunc("GET /outbox", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]int64{"pending": a.outbox})
	})
	mux.HandleFunc("GET /faults", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		flags := a.flags
		if a.ghost != "" {
			flags = append(flags[:len(flags):len(flags)], flag(a.ghost, upstream.FaultBool, "false"))
		}
		writeJSON(w, http.StatusOK, flags)
	})
	change := func(w http.ResponseWriter, r *http.Request, name string, set func(*upstream.Fault) *upstream.Problem) {
		a.mu.Lock()
		defer a.mu.Unlock()
		for i := range a.flags {
			if a.flags[i].Name == name {
				if p := set(&a.flags[i]); p != nil {
					writeProblem(w, *p)
					return
				}
				if a.hang {
					a.mu.Unlock()
					hangAfter(r, true)
					a.mu.Lock()
				}
				writeJSON(w, http.StatusOK, a.flags[i])
				return
			}
		}
		writeProblem(w, upstream.Problem{Status: 404, Title: "Not Found", Detail: "unknown fault flag " + name})
	}
	mux.HandleFunc("PUT /faults/{name}", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Value string `json:"value"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeProblem(w, upstream.Problem{Status: 400, Title: "Bad Request", Detail: err.Error()})
			return
		}
		change(w, r, r.PathValue("name"), func(f *upstream.Fault) *upstream.Problem {
			if body.Value == "refuse-me" {
				return &upstream.Problem{Status: 400, Title: "Bad Request", Field: "value",
					Detail: "value: SKU list is malformed"}
			}
			// The fakes cap durations below the console's own limit, so that
			// a duration the console accepts can still be refused.
			if d, err := time.ParseDuration(body.Value); f.Type == upstream.FaultDuration && err == nil && d > fakeMaxDuration {
				return &upstream.Problem{Status: 400, Title: "Bad Request", Field: "value",
					Detail: "value: at most " + fakeMaxDuration.String()}
			}
			a.sets = append(a.sets, f.Name+"="+body.Value)
			f.Value, f.Source = body.Value, "api"
			now := time.Now()
			f.UpdatedAt = &now
			return nil
		})
	})
	mux.HandleFunc("DELETE /faults/{name}", func(w http.ResponseWriter, r *http.Request) {
		change(w, r, r.PathValue("name"), func(f *upstream.Fault) *upstream.Problem {
			a.resets = append(a.resets, f.Name)
			f.Value, f.Source, f.UpdatedAt = f.Default, "default", nil
			return nil
		})
	})
	if a.provider != "" {
		// As payment's GET /gateway and shipping's GET /carrier: newest
		// first, filtered by ?order_id=.
		mux.HandleFunc("GET "+a.provider, func(w http.ResponseWriter, r *http.Request) {
			a.mu.Lock()
			defer a.mu.Unlock()
			id := r.URL.Query().Get("order_id")
			a.providerAsked = append(a.providerAsked, id)
			if a.providerStatus != 0 {
				writeProblem(w, upstream.Problem{Status: a.providerStatus, Title: http.StatusText(a.providerStatus), Detail: "provider books unavailable"})
				return
			}
			out := []upstream.ProviderRecord{}
			if rec, ok := a.records[id]; ok {
				out = append(out, rec)
			}
			writeJSON(w, http.StatusOK, out)
		})
	}
	mux.HandleFunc("GET /stock", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.stock == nil {
			writeProblem(w, upstream.Problem{Status: 404, Title: "Not Found"})
			return
		}
		writeJSON(w, http.StatusOK, a.stock)
	})
	mux.HandleFunc("POST /stock/{sku}/restock", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Quantity int `json:"quantity"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		a.mu.Lock()
		defer a.mu.Unlock()
		for i := range a.stock {
			if a.stock[i].SKU == r.PathValue("sku") {
				if key := r.Header.Get("Idempotency-Key"); key != "" {
					restock := fmt.Sprintf("%s by %d", a.stock[i].SKU, body.Quantity)
					switch earlier, ok := a.restockKeys[key]; {
					case ok && earlier == restock:
						w.Header().Set("Idempotent-Replayed", "true")
						writeJSON(w, http.StatusOK, a.stock[i])
						return
					case ok:
						writeProblem(w, upstream.Problem{Status: 422, Type: idempotency.ProblemTypeKeyReused, Title: "Idempotency key reused",
							Field: "Idempotency-Key", Detail: "Idempotency-Key: was sent before with another restock (" + earlier + "); send a new key for this one"})
						return
					}
					if a.restockKeys == nil {
						a.restockKeys = map[string]string{}
					}
					a.restockKeys[key] = restock
				}
				a.restocks = append(a.restocks, fmt.Sprintf("%s+%d", a.stock[i].SKU, body.Quantity))
				a.stock[i].Available += body.Quantity
				a.stock[i].Restocked += body.Quantity
				st := a.stock[i]
				if a.hang {
					a.mu.Unlock()
					hangAfter(r, true)
					a.mu.Lock()
				}
				writeJSON(w, http.StatusOK, st)
				return
			}
		}
		writeProblem(w, upstream.Problem{Status: 404, Title: "Not Found", Field: "sku", Detail: "sku: inventory holds no SKU " + strconv.Quote(r.PathValue("sku"))})
	})
	return unreadableSuccess(mux, func() bool { return hanging(&a.mu, &a.unreadable) })
}

// ---- the console under test -------------------------------------------------------

// env is a console over fakes of every service and a real SQLite queue.
type env struct {
	srv    *Server
	orders *fakeOrders
	admins map[string]*fakeAdmin
	queue  *QueueStore
	// b is the queue's backend, to put messages and dead letters.
	b backend.Backend
	// queuePath is the queue's SQLite file.
	queuePath string
}

// deadURL is an address where nothing listens.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

type envOption func(*Config)

// newEnv starts the fakes and the console. Options may point services
// elsewhere (deadURL) or change the queue.
func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	e := &env{orders: newFakeOrders(), admins: map[string]*fakeAdmin{}}
	serve := func(h http.Handler) string {
		s := httptest.NewServer(h)
		t.Cleanup(s.Close)
		return s.URL
	}
	urls := map[string]string{}
	for _, name := range []string{ServiceOrder, ServiceInventory, ServicePayment, ServiceShipping} {
		e.admins[name] = newFakeAdmin(name)
		urls[name] = serve(e.admins[name].handler())
	}
	qpath := filepath.Join(t.TempDir(), "queue.db")
	b, err := queue.OpenBackend(context.Background(), queue.Config{URL: "sqlite://" + qpath})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	e.b, e.queuePath = b, qpath
	e.queue = NewQueueStore("sqlite://" + qpath)
	t.Cleanup(func() { _ = e.queue.Close() })
	cfg := Config{
		OrderURL:      serve(e.orders.handler()),
		OrderAdminURL: urls[ServiceOrder],
		InventoryURL:  urls[ServiceInventory],
		PaymentURL:    urls[ServicePayment],
		ShippingURL:   urls[ServiceShipping],
		Queue:         e.queue,
		QueueName:     "sqlite://" + qpath,
		JaegerUIURL:   "http://jaeger.test:16686/",
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	return e
}

// allDown points every service and the queue at nothing.
func allDown(t *testing.T) envOption {
	return func(c *Config) {
		dead := deadURL(t)
		c.OrderURL, c.OrderAdminURL, c.InventoryURL, c.PaymentURL, c.ShippingURL = dead, dead, dead, dead, dead
		c.Queue = NewQueueStore("sqlite://" + filepath.Join(t.TempDir(), "missing", "queue.db"))
	}
}

// ---- a browser-like client ---------------------------------------------------------

// client keeps the console's cookies, like a browser without JavaScript
// (or, with htmx set, like htmx).
type client struct {
	t       *testing.T
	h       http.Handler
	cookies map[string]*http.Cookie
}

func newClient(t *testing.T, h http.Handler) *client {
	return &client{t: t, h: h, cookies: map[string]*http.Cookie{}}
}

type resp struct {
	Code   int
	Header http.Header
	Body   string
}

func (c *client) do(req *http.Request) resp {
	c.t.Helper()
	req.Host = "127.0.0.1:8090"
	for _, ck := range c.cookies {
		req.AddCookie(ck)
	}
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)
	res := rec.Result()
	for _, ck := range res.Cookies() {
		if ck.MaxAge < 0 {
			delete(c.cookies, ck.Name)
		} else {
			c.cookies[ck.Name] = ck
		}
	}
	body, _ := io.ReadAll(res.Body)
	return resp{Code: res.StatusCode, Header: res.Header, Body: string(body)}
}

func (c *client) get(path string, htmx bool) resp {
	c.t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if htmx {
		req.Header.Set("HX-Request", "true")
	}
	return c.do(req)
}

// token returns the CSRF token, loading a page first if needed.
func (c *client) token() string {
	c.t.Helper()
	if ck, ok := c.cookies[csrfCookie]; ok {
		return ck.Value
	}
	r := c.get("/stock", false)
	m := regexp.MustCompile(`name="_csrf" value="([^"]+)"`).FindStringSubmatch(r.Body)
	if m == nil {
		c.t.Fatalf("no CSRF token on /stock: %d %s", r.Code, r.Body)
	}
	return m[1]
}

// post sends a form with the CSRF token.
func (c *client) post(path string, form url.Values, htmx bool) resp {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set(csrfField, c.token())
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if htmx {
		req.Header.Set("HX-Request", "true")
	}
	return c.do(req)
}

// mustContain fails unless body holds every want.
func mustContain(t *testing.T, what, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("%s: got a body without %q:\n%s", what, w, abbreviate(body))
		}
	}
}

func mustNotContain(t *testing.T, what, body string, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(body, w) {
			t.Errorf("%s: got a body with %q, want none:\n%s", what, w, abbreviate(body))
		}
	}
}

func abbreviate(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "…"
	}
	return s
}
