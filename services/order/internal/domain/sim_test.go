package domain

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestSagaUnderRandomDelivery drives orders through simulated services over a
// network that reorders and duplicates every message, with random customer
// cancels and timeouts firing while replies are still in flight. Whatever the
// interleaving, once the network is quiet every order must be terminal, have
// sent ChargePayment at most once, and have left the services consistent with
// its status: a completed order holds its stock, charge and shipment; any
// other holds none of them. A reply that reaches an order already terminal
// (late, or a duplicate) sends nothing: the services keep their tombstones,
// so the order knows of every effect before it ends.
//
// The simulated services behave as the contracts require: idempotent per
// order, every compensation answered, and a compensation processed before the
// step it undoes makes that step fail later (a tombstone).
func TestSagaUnderRandomDelivery(t *testing.T) {
	seen := map[string]int{}
	for seed := range uint64(3000) {
		for _, f := range runSimulation(t, seed) {
			seen[f]++
		}
		if t.Failed() {
			t.Fatalf("seed %d failed", seed)
		}
	}
	// The runs must reach the situations this test is about.
	for _, f := range []string{
		string(StatusCompleted), string(StatusCancelled), string(StatusRejected),
		"cancelled by the customer", "timed out", "compensation retried",
		"reply after the end", "effect undone while cancelling",
	} {
		if seen[f] == 0 {
			t.Errorf("no run covered %q: %v", f, seen)
		}
	}
	t.Logf("runs per situation: %v", seen)
}

// simMsg is a message on the simulated network: a command for a service, or
// a reply for the order.
type simMsg struct {
	cmd   *Command
	reply input
}

// simService is one service's record of one order: the effect's outcome,
// decided once, and whether it is in place or undone.
type simService struct {
	decided   bool
	succeeded bool
	active    bool // the effect is in place
	undone    bool // compensated (also a tombstone when nothing was done)
}

type simulation struct {
	rng                      *rand.Rand
	o                        *Order
	now                      time.Time
	net                      []simMsg
	stock, payment, shipment simService
	charges                  int
	log                      []string
}

// runSimulation runs one order to a quiet network and returns the situations
// it went through.
func runSimulation(t *testing.T, seed uint64) []string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	o, d, err := PlaceOrder(validNewOrder(), testTimeouts, t0)
	if err != nil {
		t.Fatal(err)
	}
	s := &simulation{rng: rng, o: o, now: t0}
	s.send(d)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("seed %d: %s\nlog:\n%v", seed, fmt.Sprintf(format, args...), s.log)
	}
	pStockFail, pDecline, pShipFail := rng.Float64()*0.4, rng.Float64()*0.4, rng.Float64()*0.4
	var late []string // situations seen on the way, beside the final ones
	cancelAt := -1
	if rng.IntN(3) == 0 {
		cancelAt = rng.IntN(12)
	}
	for i := 0; ; i++ {
		if i > 5000 {
			fail("no quiet state after %d steps: status %s, %d messages in flight", i, o.Status(), len(s.net))
			return nil
		}
		if i == cancelAt {
			s.decide("Cancel", func() (Decision, error) { return o.Cancel("customer", s.now) }, true)
		}
		switch {
		case len(s.net) > 0 && rng.IntN(10) < 7:
			k := rng.IntN(len(s.net))
			m := s.net[k]
			if rng.IntN(5) != 0 { // 1 in 5 deliveries is duplicated later
				s.net = append(s.net[:k], s.net[k+1:]...)
			}
			if m.cmd != nil {
				s.serve(*m.cmd, pStockFail, pDecline, pShipFail)
			} else {
				in := m.reply
				ended := o.Status().IsTerminal()
				d := s.decide(in.name, func() (Decision, error) { return in.do(o, s.now) }, false)
				if ended {
					late = append(late, "reply after the end")
					if len(d.Commands) > 0 {
						fail("%s reached the %s order and sent %s", in.name, o.Status(), summary(d))
						return nil
					}
				}
			}
		case len(s.net) == 0 && o.Deadline().IsZero():
			s.checkQuiet(fail)
			return append(situations(o), late...)
		default:
			s.now = s.now.Add(time.Duration(rng.IntN(15)) * time.Second)
			s.decide("Timeout", func() (Decision, error) { return o.Timeout(s.now) }, false)
		}
		if s.charges > 1 {
			fail("ChargePayment sent %d times", s.charges)
			return nil
		}
	}
}

func (s *simulation) decide(name string, do func() (Decision, error), mayFail bool) Decision {
	d, err := do()
	if err != nil && !mayFail {
		s.log = append(s.log, fmt.Sprintf("%s: error %v", name, err))
		return Decision{}
	}
	if !d.IsEmpty() {
		s.log = append(s.log, fmt.Sprintf("%s -> %s", name, summary(d)))
	}
	s.send(d)
	return d
}

func (s *simulation) send(d Decision) {
	for _, c := range d.Commands {
		if c.Kind == ChargePayment {
			s.charges++
		}
		s.net = append(s.net, simMsg{cmd: &c})
	}
}

func (s *simulation) reply(in input) {
	s.net = append(s.net, simMsg{reply: in})
}

// serve runs one command at a service and queues its reply.
func (s *simulation) serve(c Command, pStockFail, pDecline, pShipFail float64) {
	try := func(svc *simService, pFail float64) bool {
		if svc.undone && !svc.active {
			return false // tombstone: compensated before it was done
		}
		if !svc.decided {
			svc.decided, svc.succeeded = true, s.rng.Float64() >= pFail
			svc.active = svc.succeeded
		}
		return svc.succeeded
	}
	undo := func(svc *simService) (hadEffect bool) {
		hadEffect = svc.succeeded // what the first compensation found, repeated
		svc.active, svc.undone = false, true
		return hadEffect
	}
	switch c.Kind {
	case ReserveStock:
		if try(&s.stock, pStockFail) {
			s.reply(stockReserved)
		} else {
			s.reply(stockFailed)
		}
	case ReleaseStock:
		if undo(&s.stock) {
			s.reply(released)
		} else {
			s.reply(releasedNone)
		}
	case ChargePayment:
		if try(&s.payment, pDecline) {
			s.reply(charged)
		} else {
			s.reply(declined)
		}
	case RefundPayment:
		if undo(&s.payment) {
			s.reply(refunded)
		} else {
			s.reply(refundedNone)
		}
	case ScheduleShipment:
		if try(&s.shipment, pShipFail) {
			s.reply(scheduled)
		} else {
			s.reply(shipFailed)
		}
	case CancelShipment:
		if undo(&s.shipment) {
			s.reply(shipCancel)
		} else {
			s.reply(shipNone)
		}
	}
}

func (s *simulation) checkQuiet(fail func(string, ...any)) {
	o := s.o
	st := o.Status()
	if !st.IsTerminal() {
		fail("quiet but not terminal: %s", st)
		return
	}
	want := st == StatusCompleted
	for _, c := range []struct {
		name   string
		active bool
	}{{"stock reserved", s.stock.active}, {"payment charged", s.payment.active}, {"shipment scheduled", s.shipment.active}} {
		if c.active != want {
			fail("order %s but %s = %v, want %v", st, c.name, c.active, want)
		}
	}
	assertSameStateQuiet(fail, o)
}

func assertSameStateQuiet(fail func(string, ...any), o *Order) {
	r, err := Rehydrate(o.PendingEvents())
	if err != nil {
		fail("Rehydrate: %v", err)
		return
	}
	if r.Status() != o.Status() || r.Reason() != o.Reason() || !r.Deadline().Equal(o.Deadline()) {
		fail("Rehydrate: got (%s, %q, %v), want (%s, %q, %v)", r.Status(), r.Reason(), r.Deadline(), o.Status(), o.Reason(), o.Deadline())
	}
}

func situations(o *Order) []string {
	out := []string{string(o.Status())}
	timeouts := 0
	for _, e := range o.PendingEvents() {
		switch e := e.(type) {
		case CancellationRequested:
			out = append(out, "cancelled by the customer")
		case StepTimedOut:
			if timeouts++; timeouts == 1 {
				out = append(out, "timed out")
			} else if timeouts == 2 {
				out = append(out, "compensation retried")
			}
		case CompensationRequested:
			if strings.HasSuffix(e.Reason, "after the order stopped") {
				out = append(out, "effect undone while cancelling")
			}
		}
	}
	return out
}
