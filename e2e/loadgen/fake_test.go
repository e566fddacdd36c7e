package loadgen

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// fakeAPI is an in-memory order API with the order service's list
// semantics (status filter, newest first by placed_at then id, opaque
// cursor, at most 500 per page): order i becomes terminal life(i) after it
// is placed, with the status outcome(i) gives it.
type fakeAPI struct {
	life      func(i int) time.Duration
	outcome   func(i int) string
	failEvery int // every failEvery-th POST answers 503 if it is its key's first (0: never)
	// The first refuse POSTs of every key are refused as the order
	// service's admission control does: refuseCode (default 503) with
	// Retry-After: retryAfter (none if "") and the too-many-open-orders
	// problem.
	refuse     int
	refuseCode int
	retryAfter string
	// The first notReady GET /readyz answer 503, as a service still
	// starting does.
	notReady    int
	readyChecks int
	// onStatusRead, if set, is called (with mu held) at every GET of
	// /orders or /orders/{id}: loadgen reads statuses only of orders it
	// placed, so the first call says that one was placed and answered.
	onStatusRead func()

	mu       sync.Mutex
	orders   map[string]*fakeOrder
	keys     map[string]string // idempotency key -> id
	attempts map[string]int    // POSTs per idempotency key
	postKeys []string          // the idempotency key of every POST, in arrival order
	n        int
	posts    int
	lists    int
	gets     int
	bodies   []OrderRequest
	maxOpen  int // most non-terminal orders seen when an order was placed
}

type fakeOrder struct {
	id       string
	placedAt time.Time
	life     time.Duration
	status   string // final status
}

func newFakeAPI(lifetime time.Duration, outcome func(int) string) *fakeAPI {
	if outcome == nil {
		outcome = func(int) string { return StatusCompleted }
	}
	return &fakeAPI{
		life: func(int) time.Duration { return lifetime }, outcome: outcome,
		orders: map[string]*fakeOrder{}, keys: map[string]string{}, attempts: map[string]int{},
	}
}

func (f *fakeAPI) view(o *fakeOrder, now time.Time) Order {
	v := Order{ID: o.id, Status: StatusPending, PlacedAt: o.placedAt, UpdatedAt: o.placedAt}
	if fin := o.placedAt.Add(o.life); !now.Before(fin) {
		v.Status, v.UpdatedAt = o.status, fin
		v.FinishedAt = &fin
	}
	return v
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now().Truncate(time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/orders":
		f.posts++
		key := r.Header.Get("Idempotency-Key")
		f.attempts[key]++
		f.postKeys = append(f.postKeys, key)
		if f.attempts[key] <= f.refuse {
			f.refuseOrder(w)
			return
		}
		if f.failEvery > 0 && f.posts%f.failEvery == 0 && f.attempts[key] == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		var req OrderRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if id, ok := f.keys[key]; ok {
			writeJSON(w, http.StatusOK, f.view(f.orders[id], now))
			return
		}
		f.bodies = append(f.bodies, req)
		open := 0
		for _, o := range f.orders {
			if now.Before(o.placedAt.Add(o.life)) {
				open++
			}
		}
		f.maxOpen = max(f.maxOpen, open)
		o := &fakeOrder{id: fmt.Sprintf("o-%06d", f.n), placedAt: now, life: f.life(f.n), status: f.outcome(f.n)}
		f.n++
		f.orders[o.id], f.keys[key] = o, o.id
		writeJSON(w, http.StatusCreated, f.view(o, now))
	case r.Method == http.MethodGet && r.URL.Path == "/orders":
		f.lists++
		f.statusRead()
		f.list(w, r, now)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/orders/"):
		f.gets++
		f.statusRead()
		o, ok := f.orders[strings.TrimPrefix(r.URL.Path, "/orders/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, http.StatusOK, f.view(o, now))
	case r.URL.Path == "/readyz":
		f.readyChecks++
		if f.readyChecks <= f.notReady {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeAPI) statusRead() {
	if f.onStatusRead != nil {
		f.onStatusRead()
	}
}

func (f *fakeAPI) refuseOrder(w http.ResponseWriter) {
	code := f.refuseCode
	if code == 0 {
		code = http.StatusServiceUnavailable
	}
	if f.retryAfter != "" {
		w.Header().Set("Retry-After", f.retryAfter)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type": "urn:orderflow:problem:too-many-open-orders", "title": "Too many open orders", "status": code,
		"detail": "too many open orders: 3 orders are open, the limit is 3; send the request again later (a POST /orders with the same Idempotency-Key)",
	})
}

func (f *fakeAPI) list(w http.ResponseWriter, r *http.Request, now time.Time) {
	status := r.URL.Query().Get("status")
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	var since time.Time
	if s := r.URL.Query().Get("placed_since"); s != "" {
		var err error
		if since, err = time.Parse(time.RFC3339Nano, s); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	var all []Order
	for _, o := range f.orders {
		if v := f.view(o, now); (status == "" || v.Status == status) && !v.PlacedAt.Before(since) {
			all = append(all, v)
		}
	}
	newerFirst := func(a, b Order) int {
		if c := b.PlacedAt.Compare(a.PlacedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	}
	slices.SortFunc(all, newerFirst)
	if c := r.URL.Query().Get("cursor"); c != "" {
		b, _ := base64.RawURLEncoding.DecodeString(c)
		ms, id, _ := strings.Cut(string(b), "|")
		n, _ := strconv.ParseInt(ms, 10, 64)
		pos := Order{ID: id, PlacedAt: time.UnixMilli(n)}
		i := 0
		for i < len(all) && newerFirst(all[i], pos) <= 0 {
			i++
		}
		all = all[i:]
	}
	page := orderPage{Orders: all[:min(limit, len(all))]}
	if len(all) > limit {
		last := page.Orders[len(page.Orders)-1]
		page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(last.PlacedAt.UnixMilli(), 10) + "|" + last.ID))
	}
	writeJSON(w, http.StatusOK, page)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
