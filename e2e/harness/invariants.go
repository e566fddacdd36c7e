package harness

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Stock is one SKU's stock (inventory GET /stock).
type Stock struct {
	SKU       string `json:"sku"`
	Available int    `json:"available"`
	Reserved  int    `json:"reserved"`
	Initial   int    `json:"initial"`
	Restocked int    `json:"restocked"`
}

// InventoryState is inventory GET /state.
type InventoryState struct {
	Stock        []Stock        `json:"stock"`
	Reservations map[string]int `json:"reservations"`
	Conserved    bool           `json:"conserved"`
}

// Payment is one order's payment (payment GET /payments).
type Payment struct {
	PaymentID   string `json:"payment_id"`
	OrderID     string `json:"order_id"`
	AmountCents int64  `json:"amount_cents"`
	Status      string `json:"status"` // CHARGED, DECLINED, REFUNDED, VOIDED
	Reason      string `json:"reason"`
}

// LedgerEntry is one entry of payment GET /ledger: a charge (positive) or
// a refund (negative).
type LedgerEntry struct {
	PaymentID   string `json:"payment_id"`
	OrderID     string `json:"order_id"`
	Kind        string `json:"kind"` // charge, refund
	AmountCents int64  `json:"amount_cents"`
}

// PaymentState is payment GET /state.
type PaymentState struct {
	Payments           map[string]int `json:"payments"`
	ChargedCents       int64          `json:"charged_cents"`
	RefundedCents      int64          `json:"refunded_cents"`
	NetCents           int64          `json:"net_cents"`
	OutstandingCents   int64          `json:"outstanding_cents"`
	OrdersChargedTwice int            `json:"orders_charged_twice"`
	Consistent         bool           `json:"consistent"`
}

// Shipment is one order's shipment (shipping GET /shipments).
type Shipment struct {
	ShipmentID string `json:"shipment_id"`
	OrderID    string `json:"order_id"`
	Status     string `json:"status"` // SCHEDULED, FAILED, CANCELLED, VOIDED
	Lines      []Item `json:"lines"`
}

// ProviderRecord is the simulated payment gateway's (payment GET /gateway)
// or carrier's (shipping GET /carrier) line for one order: its answer to
// the first request, whether it was cancelled (refunded, withdrawn), and
// how many requests and cancellations reached it.
type ProviderRecord struct {
	OrderID   string `json:"order_id"`
	Outcome   string `json:"outcome"` // ACCEPTED, REFUSED, VOIDED
	Reference string `json:"reference"`
	// AmountCents is what an accepted charge took (the gateway only).
	AmountCents int64 `json:"amount_cents"`
	Cancelled   bool  `json:"cancelled"`
	Requests    int   `json:"requests"`
	Cancels     int   `json:"cancels"`
}

// Holds says whether the provider still holds an effect for the order: a
// charge not refunded, a booking not withdrawn.
func (r ProviderRecord) Holds() bool { return r.Outcome == "ACCEPTED" && !r.Cancelled }

// listLimit is the largest page the services' list routes serve; a system
// with more payments or shipments is checked through the totals only
// (CheckInvariants says so in the test's log).
const listLimit = 100000

// Snapshot is the state of the whole system at one moment (read service by
// service, so only meaningful once the system is quiet).
type Snapshot struct {
	Orders       []Order
	Inventory    InventoryState
	Payments     []Payment
	Ledger       []LedgerEntry
	PaymentState PaymentState
	Shipments    []Shipment
	// Gateway and Carrier are the providers' own books: what the customer
	// was charged and which parcels were booked, whatever payment and
	// shipping recorded.
	Gateway []ProviderRecord
	Carrier []ProviderRecord
	// ShipmentCounts is shipping GET /state: shipments by status.
	ShipmentCounts map[string]int
	Queue          []TopicStats
	// Outboxes is each service's GET /outbox: messages it committed and
	// has not forwarded to the queue yet, which the queue's depth does
	// not show (a late reply still on its way).
	Outboxes    map[string]int64
	DeadLetters []DeadLetter
	// Catalog is the catalogue the system runs with (System.Catalog): what
	// inventory's stock must start from.
	Catalog []Product
	// Partial is true when a list was cut at listLimit: per-order checks
	// of payments and shipments are then skipped.
	Partial bool
}

// Snapshot reads the state of every service.
func (c *Client) Snapshot(ctx context.Context) (Snapshot, error) {
	s := Snapshot{Catalog: c.sys.Catalog()}
	var err error
	if s.Orders, err = c.Orders(ctx); err != nil {
		return s, err
	}
	var shipState struct {
		Shipments map[string]int `json:"shipments"`
	}
	lim := fmt.Sprintf("?limit=%d", listLimit)
	steps := []error{
		c.AdminGet(ctx, InventoryService, "/state", &s.Inventory),
		c.AdminGet(ctx, PaymentService, "/state", &s.PaymentState),
		c.AdminGet(ctx, PaymentService, "/payments"+lim, &s.Payments),
		c.AdminGet(ctx, PaymentService, "/ledger"+lim, &s.Ledger),
		c.AdminGet(ctx, ShippingService, "/shipments"+lim, &s.Shipments),
		c.AdminGet(ctx, ShippingService, "/state", &shipState),
		c.AdminGet(ctx, PaymentService, "/gateway"+lim, &s.Gateway),
		c.AdminGet(ctx, ShippingService, "/carrier"+lim, &s.Carrier),
	}
	for _, err := range steps {
		if err != nil {
			return s, err
		}
	}
	s.ShipmentCounts = shipState.Shipments
	s.Partial = len(s.Payments) >= listLimit || len(s.Ledger) >= listLimit || len(s.Shipments) >= listLimit ||
		len(s.Gateway) >= listLimit || len(s.Carrier) >= listLimit
	// The outboxes before the queue: a message forwarded in between is
	// then seen on the queue, not missed by both.
	s.Outboxes = make(map[string]int64, len(Services))
	for _, name := range Services {
		var ob struct {
			Pending int64 `json:"pending"`
		}
		if err := c.AdminGet(ctx, name, "/outbox", &ob); err != nil {
			return s, err
		}
		s.Outboxes[name] = ob.Pending
	}
	if s.Queue, err = c.QueueStats(ctx); err != nil {
		return s, err
	}
	if s.DeadLetters, err = c.DeadLetters(ctx, "", ""); err != nil {
		return s, err
	}
	return s, nil
}

// Expect tunes CheckInvariants.
type Expect struct {
	// Orders, when > 0, is how many orders must exist: none lost, none
	// made up.
	Orders int
	// IDs, when not nil, are the ids of every order the test placed (as
	// the order API acknowledged them): the orders that exist must be
	// exactly these, each listed once. A count alone misses one order lost
	// and another made up; two requests acknowledged with one id (one of
	// them lost) are a violation too.
	IDs []string
	// Deadline, when > 0, bounds every order's time from placement to its
	// terminal state (as the order service recorded them).
	Deadline time.Duration
	// AllowDeadLetters accepts dead letters in the queue; by default any
	// dead letter is a violation (a lost message).
	AllowDeadLetters bool
	// Quiet is how long CheckInvariants waits for the system to settle
	// (every consumer group caught up, compensations done) before it
	// reports. Default 60s.
	Quiet time.Duration
}

// Violations checks the invariants of docs/design.md §4 on a quiet system and
// returns what is wrong, or nothing:
//
//   - every order is terminal (within exp.Deadline), and exp.Orders exist;
//     with exp.IDs, the orders are exactly those ids, each listed once;
//   - inventory holds every SKU of the catalogue, and no other, each
//     starting from the catalogue's initial stock;
//   - stock is never negative and conserved (available + reserved =
//     initial + restocked), and what stays reserved is exactly what the
//     COMPLETED orders hold (nothing leaks, nothing is released twice);
//   - at most one charge per order; a COMPLETED order is charged its total
//     exactly once; every charge of a CANCELLED or REJECTED order is
//     refunded (ledger net 0); the ledger agrees with the payments;
//   - a COMPLETED order holds its reservation and has a SCHEDULED
//     shipment, no other order has either;
//   - the payment gateway's and the carrier's own books agree with the
//     payments and shipments: nothing charged or booked twice or left
//     standing behind a compensation, nothing they did unrecorded
//     (providerViolations), and every charge and refund at the gateway in
//     the ledger (gatewayLedgerViolations);
//   - every consumer group has caught up, and no message was dead-lettered
//     (unless allowed).
func (s Snapshot) Violations(exp Expect) []string {
	var v []string
	add := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }

	orders := map[string]Order{}
	var completedCents int64
	completedQty := map[string]int{}
	for _, o := range s.Orders {
		orders[o.ID] = o
		if !Terminal(o.Status) {
			add("order %s is %s (awaiting %v), want a terminal status", o.ID, o.Status, o.Awaiting)
			continue
		}
		if exp.Deadline > 0 && o.FinishedAt != nil && o.FinishedAt.Sub(o.PlacedAt) > exp.Deadline {
			add("order %s took %s to become %s, deadline %s", o.ID, o.FinishedAt.Sub(o.PlacedAt).Round(time.Millisecond), o.Status, exp.Deadline)
		}
		if o.FinishedAt == nil {
			add("order %s is %s without finished_at", o.ID, o.Status)
		}
		if o.Status == StatusCompleted {
			completedCents += o.TotalCents
			for _, it := range o.Items {
				completedQty[it.SKU] += it.Quantity
			}
		}
	}
	if exp.Orders > 0 && len(s.Orders) != exp.Orders {
		add("orders: got %d, want %d (lost or duplicated orders)", len(s.Orders), exp.Orders)
	}
	if exp.IDs != nil {
		acked := make(map[string]int, len(exp.IDs))
		for _, id := range exp.IDs {
			acked[id]++
		}
		listed := make(map[string]int, len(s.Orders))
		for _, o := range s.Orders {
			listed[o.ID]++
		}
		for id, n := range acked {
			if n > 1 {
				add("order %s was acknowledged for %d requests, want one order per request (the others are lost)", id, n)
			}
			if listed[id] == 0 {
				add("order %s was acknowledged but is missing (lost)", id)
			}
		}
		for id, n := range listed {
			if n > 1 {
				add("order %s is listed %d times", id, n)
			}
			if acked[id] == 0 {
				add("order %s exists but was never acknowledged to the test (made up or placed twice)", id)
			}
		}
	}

	// Stock: every SKU of the catalogue, from its initial stock.
	if len(s.Catalog) == 0 {
		add("no catalogue to check inventory's stock against")
	}
	stockOf := make(map[string]Stock, len(s.Inventory.Stock))
	for _, st := range s.Inventory.Stock {
		if _, dup := stockOf[st.SKU]; dup {
			add("stock %s is listed twice", st.SKU)
		}
		stockOf[st.SKU] = st
	}
	inCatalog := make(map[string]bool, len(s.Catalog))
	for _, p := range s.Catalog {
		inCatalog[p.SKU] = true
		st, ok := stockOf[p.SKU]
		switch {
		case !ok:
			add("stock %s: missing from inventory, whose catalogue starts it at %d", p.SKU, p.InitialStock)
		case st.Initial != p.InitialStock:
			add("stock %s: initial %d, but the catalogue starts it at %d", p.SKU, st.Initial, p.InitialStock)
		}
	}
	for _, st := range s.Inventory.Stock {
		if !inCatalog[st.SKU] {
			add("stock %s: inventory holds a SKU the catalogue does not list: %+v", st.SKU, st)
		}
	}
	if !s.Inventory.Conserved {
		add("inventory reports its stock as not conserved: %+v", s.Inventory.Stock)
	}
	for _, st := range s.Inventory.Stock {
		if st.Available < 0 || st.Reserved < 0 {
			add("stock %s is negative: %+v", st.SKU, st)
		}
		if st.Available+st.Reserved != st.Initial+st.Restocked {
			add("stock %s not conserved: available %d + reserved %d != initial %d + restocked %d",
				st.SKU, st.Available, st.Reserved, st.Initial, st.Restocked)
		}
		if st.Reserved != completedQty[st.SKU] {
			add("stock %s: %d reserved, but the COMPLETED orders hold %d", st.SKU, st.Reserved, completedQty[st.SKU])
		}
	}
	completed := countStatus(s.Orders, StatusCompleted)
	if got := s.Inventory.Reservations["RESERVED"]; got != completed {
		add("inventory: %d reservations held, want one per COMPLETED order (%d)", got, completed)
	}
	if got := s.ShipmentCounts["SCHEDULED"]; got != completed {
		add("shipping: %d shipments SCHEDULED, want one per COMPLETED order (%d)", got, completed)
	}

	// Payments.
	ps := s.PaymentState
	if !ps.Consistent || ps.OrdersChargedTwice != 0 {
		add("payment state inconsistent: %+v", ps)
	}
	if ps.NetCents != completedCents {
		add("payments: net %d cents charged, but the COMPLETED orders total %d", ps.NetCents, completedCents)
	}
	if ps.Payments["CHARGED"] != completed {
		add("payments: %d CHARGED, want one per COMPLETED order (%d)", ps.Payments["CHARGED"], completed)
	}
	if !s.Partial {
		charges := map[string]int{}
		net := map[string]int64{}
		for _, e := range s.Ledger {
			if e.Kind == "charge" {
				charges[e.OrderID]++
			}
			net[e.OrderID] += e.AmountCents
		}
		for id, n := range charges {
			if n > 1 {
				add("order %s charged %d times", id, n)
			}
			if _, ok := orders[id]; !ok {
				add("ledger charges order %s, which the order service does not know", id)
			}
		}
		payments := map[string]Payment{}
		for _, p := range s.Payments {
			if _, dup := payments[p.OrderID]; dup {
				add("order %s has two payments", p.OrderID)
			}
			payments[p.OrderID] = p
		}
		shipments := map[string]Shipment{}
		for _, sh := range s.Shipments {
			if _, dup := shipments[sh.OrderID]; dup {
				add("order %s has two shipments", sh.OrderID)
			}
			shipments[sh.OrderID] = sh
			if _, ok := orders[sh.OrderID]; !ok && sh.Status == "SCHEDULED" {
				add("shipment %s of unknown order %s", sh.ShipmentID, sh.OrderID)
			}
		}
		for _, o := range s.Orders {
			p, paid := payments[o.ID]
			sh := shipments[o.ID]
			switch o.Status {
			case StatusCompleted:
				if !paid || p.Status != "CHARGED" || p.AmountCents != o.TotalCents || p.PaymentID != o.PaymentID {
					add("COMPLETED order %s (total %d, payment %s): payment %+v, want CHARGED for the total", o.ID, o.TotalCents, o.PaymentID, p)
				}
				if net[o.ID] != o.TotalCents {
					add("COMPLETED order %s: ledger net %d, want %d", o.ID, net[o.ID], o.TotalCents)
				}
				if sh.Status != "SCHEDULED" || sh.ShipmentID != o.ShipmentID {
					add("COMPLETED order %s (shipment %s): shipment %+v, want it SCHEDULED", o.ID, o.ShipmentID, sh)
				}
			case StatusCancelled, StatusRejected:
				if paid && p.Status == "CHARGED" {
					add("%s order %s: payment %s still CHARGED (not refunded)", o.Status, o.ID, p.PaymentID)
				}
				if net[o.ID] != 0 {
					add("%s order %s: ledger net %d cents, want 0 (every charge refunded)", o.Status, o.ID, net[o.ID])
				}
				if sh.Status == "SCHEDULED" {
					add("%s order %s: shipment %s still SCHEDULED", o.Status, o.ID, sh.ShipmentID)
				}
			}
		}
		v = append(v, providerViolations(orders, payments, shipments, s.Gateway, s.Carrier)...)
		v = append(v, gatewayLedgerViolations(s.Gateway, s.Ledger)...)
	}

	// The queue.
	for _, t := range s.Queue {
		for _, g := range t.Groups {
			if g.Depth != 0 {
				add("queue: group %s has %d messages of %s left (%d in flight, %d abandoned, %d retrying)", g.ConsumerGroup, g.Depth, t.Topic, g.InFlight, g.Abandoned, g.Retrying)
			}
		}
	}
	for _, name := range Services {
		if n := s.Outboxes[name]; n != 0 {
			add("outbox: %s holds %d messages it committed and has not forwarded", name, n)
		}
	}
	if !exp.AllowDeadLetters {
		for _, dl := range s.DeadLetters {
			add("dead letter %d: %s for group %s after %d attempts: %s", dl.ID, dl.Topic, dl.ConsumerGroup, dl.Attempts, dl.LastError)
		}
	}
	sort.Strings(v)
	return v
}

// providerViolations compares the providers' books with what payment and
// shipping recorded. The providers are called before the services' local
// transactions, so a redelivery or a crash between call and commit calls
// them again; only the provider's books show whether that charged or
// booked twice, or whether a compensation that came first let a late
// request take effect:
//
//   - the gateway holds a charge for an order exactly when payment has it
//     CHARGED, under the same payment id and amount; the carrier holds a booking
//     exactly when shipping has it SCHEDULED, under the same shipment id;
//   - a charge or booking the provider made is on record under its id even
//     once refunded or withdrawn: payment or shipping may learn of it only
//     from the compensation (the request's own transaction lost), but not
//     record the order as VOIDED, as if nothing had happened there;
//   - neither holds anything for an order the order service does not know.
func providerViolations(orders map[string]Order, payments map[string]Payment, shipments map[string]Shipment, gateway, carrier []ProviderRecord) []string {
	var v []string
	add := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	index := func(name string, recs []ProviderRecord) map[string]ProviderRecord {
		m := map[string]ProviderRecord{}
		for _, r := range recs {
			if _, dup := m[r.OrderID]; dup {
				add("%s has two records of order %s", name, r.OrderID)
			}
			m[r.OrderID] = r
			if _, ok := orders[r.OrderID]; !ok && r.Holds() {
				add("%s holds %s for order %s, which the order service does not know", name, r.Reference, r.OrderID)
			}
		}
		return m
	}
	gw, cr := index("gateway", gateway), index("carrier", carrier)
	for id := range orders {
		p, paid := payments[id]
		g := gw[id]
		charged := paid && p.Status == "CHARGED"
		switch {
		case g.Holds() != charged:
			add("order %s: the gateway's record %+v holds a charge: %v; payment %+v: %v", id, g, g.Holds(), p, charged)
		case g.Outcome == "ACCEPTED" && p.PaymentID == "":
			add("order %s: the gateway charged %s (refunded: %v), payment has no record of it: %+v", id, g.Reference, g.Cancelled, p)
		case g.Outcome == "ACCEPTED" && g.Reference != p.PaymentID:
			add("order %s: the gateway charged %s, payment recorded %s (a second authorization)", id, g.Reference, p.PaymentID)
		case charged && g.AmountCents != p.AmountCents:
			add("order %s: the gateway charged %d cents, payment recorded %d", id, g.AmountCents, p.AmountCents)
		}
		sh, shipped := shipments[id]
		c := cr[id]
		scheduled := shipped && sh.Status == "SCHEDULED"
		switch {
		case c.Holds() != scheduled:
			add("order %s: the carrier's record %+v holds a booking: %v; shipment %+v: %v", id, c, c.Holds(), sh, scheduled)
		case c.Outcome == "ACCEPTED" && sh.ShipmentID == "":
			add("order %s: the carrier booked %s (withdrawn: %v), shipping has no record of it: %+v", id, c.Reference, c.Cancelled, sh)
		case c.Outcome == "ACCEPTED" && c.Reference != sh.ShipmentID:
			add("order %s: the carrier booked %s, shipping recorded %s (a second booking)", id, c.Reference, sh.ShipmentID)
		}
	}
	return v
}

// gatewayLedgerViolations checks that the ledger audits every money
// movement at the gateway: each charge the gateway took, under its payment
// id and for its amount, and the refund of each charge it gave back. That
// holds too for a charge payment learnt of only from the refund (the
// charge's own transaction lost): money moved, so the ledger has both.
func gatewayLedgerViolations(gateway []ProviderRecord, ledger []LedgerEntry) []string {
	var v []string
	add := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	type key struct{ order, payment, kind string }
	sums := map[key]int64{}
	for _, e := range ledger {
		sums[key{e.OrderID, e.PaymentID, e.Kind}] += e.AmountCents
	}
	for _, g := range gateway {
		if g.Outcome != "ACCEPTED" {
			continue
		}
		if got := sums[key{g.OrderID, g.Reference, "charge"}]; got != g.AmountCents {
			add("order %s: the gateway charged %s %d cents, the ledger records a charge of %d", g.OrderID, g.Reference, g.AmountCents, got)
		}
		if got := -sums[key{g.OrderID, g.Reference, "refund"}]; g.Cancelled && got != g.AmountCents {
			add("order %s: the gateway refunded %s %d cents, the ledger records a refund of %d", g.OrderID, g.Reference, g.AmountCents, got)
		}
	}
	return v
}

func countStatus(orders []Order, status string) int {
	n := 0
	for _, o := range orders {
		if o.Status == status {
			n++
		}
	}
	return n
}

// CountStatus counts the orders in status.
func (s Snapshot) CountStatus(status string) int { return countStatus(s.Orders, status) }

// RepeatableEvents are the event types an order may record more than once:
// a compensation sent again (CompensationRequested), a deadline passing
// again (StepTimedOut). Any other type recorded twice in one stream is a
// reply applied twice.
var RepeatableEvents = map[string]bool{"CompensationRequested": true, "StepTimedOut": true}

// EventViolations reads the event stream of every order (four at a time,
// until ctx ends) and returns, sorted, every event other than the
// RepeatableEvents recorded twice in one stream (an effect applied twice),
// every ExtraChargeDetected (a second charge of one order) and every stream
// it could not read.
func (c *Client) EventViolations(ctx context.Context, ids []string) []string {
	var mu sync.Mutex
	var problems []string
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for _, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			evs, err := c.Events(ctx, id)
			var found []string
			if err != nil {
				found = append(found, fmt.Sprintf("events of order %s: %v", id, err))
			}
			seen := map[string]int{}
			for _, e := range evs {
				seen[e.Type]++
				switch {
				case e.Type == "ExtraChargeDetected":
					found = append(found, fmt.Sprintf("order %s was charged a second time (ExtraChargeDetected at version %d): %v", id, e.Version, eventTypes(evs)))
				case seen[e.Type] == 2 && !RepeatableEvents[e.Type]:
					found = append(found, fmt.Sprintf("order %s recorded %s twice: %v", id, e.Type, eventTypes(evs)))
				}
			}
			mu.Lock()
			problems = append(problems, found...)
			mu.Unlock()
		})
	}
	wg.Wait()
	sort.Strings(problems)
	return problems
}

func eventTypes(evs []Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// CheckInvariants waits (up to exp.Quiet) for the system to satisfy every
// invariant of Snapshot.Violations, and reports each remaining violation
// as a test error. Then it reads the event stream of every order of the
// last snapshot and reports each event recorded twice (EventViolations):
// nothing happens twice. It returns the last snapshot.
func (s *System) CheckInvariants(t TB, exp Expect) Snapshot {
	t.Helper()
	snap, complete := s.waitInvariants(t, exp)
	if !complete {
		return snap // the order list could not be read: nothing to fetch the streams of
	}
	ids := make([]string, len(snap.Orders))
	for i, o := range snap.Orders {
		ids[i] = o.ID
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+time.Duration(len(ids))*10*time.Millisecond)
	defer cancel()
	began := time.Now()
	problems := s.client.EventViolations(ctx, ids)
	if d := time.Since(began); d > 5*time.Second {
		t.Logf("read the event streams of %d orders in %s", len(ids), d.Round(time.Millisecond))
	}
	reportAll(t, "event streams: something happened twice", problems)
	if snap.Partial {
		t.Logf("NOT CHECKED: the payments', ledger's, shipments' or providers' lists reached %d records, so only their totals were checked, not order by order (double charges, second authorizations at a provider, refunds of cancelled orders)", listLimit)
	}
	return snap
}

// reportAll reports problems as one test error, the first 25 in full.
func reportAll(t TB, what string, problems []string) {
	t.Helper()
	if len(problems) == 0 {
		return
	}
	const show = 25
	more := ""
	if len(problems) > show {
		more = fmt.Sprintf("\n… and %d more", len(problems)-show)
		problems = problems[:show]
	}
	t.Errorf("%s:\n  %s%s", what, strings.Join(problems, "\n  "), more)
}

// waitInvariants is CheckInvariants' wait for Snapshot.Violations to hold;
// complete says the snapshot returned was read whole.
func (s *System) waitInvariants(t TB, exp Expect) (Snapshot, bool) {
	t.Helper()
	quiet := exp.Quiet
	if quiet == 0 {
		quiet = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), quiet)
	defer cancel()
	var snap Snapshot
	var violations []string
	began := time.Now()
	complete := false // snap and violations are of a complete snapshot
	for polls := 1; ; polls++ {
		next, err := s.client.Snapshot(ctx)
		switch {
		case err != nil && ctx.Err() != nil && complete:
			// The wait ended during this snapshot: report what the last
			// complete one found, and return it, not the cut-off request.
		case err != nil:
			snap, violations, complete = next, []string{"snapshot: " + err.Error()}, false
		default:
			snap, violations, complete = next, next.Violations(exp), true
		}
		if err == nil && len(violations) == 0 {
			if d := time.Since(began); d > 5*time.Second {
				t.Logf("invariants held after %s (%d snapshots of %d orders)", d.Round(time.Millisecond), polls, len(snap.Orders))
			}
			return snap, true
		}
		select {
		case <-ctx.Done():
			reportAll(t, fmt.Sprintf("invariants still violated after %s", quiet), violations)
			return snap, complete
		case <-time.After(250 * time.Millisecond):
		}
	}
}
