package sqlite

import (
	"testing"
	"time"
)

// An extension is fenced like an ack: a lease that expired and was taken
// by another claim is reported lost and the new holder's lease is left as
// it is; the current lease is extended.
func TestExtendingALostLeaseChangesNothing(t *testing.T) {
	b := gcFixture(t)
	mustSubmit(t, b, &subscribeOp{topic: "jobs", group: "g"})
	mustSubmit(t, b, &publishOp{topic: "jobs", register: true, msgs: []storedMessage{{payload: []byte("x"), metadata: "{}"}}})
	visibleAt := func() int64 {
		t.Helper()
		var v int64
		if err := b.readDB.QueryRow(`SELECT visible_at FROM queue_deliveries WHERE topic = 'jobs' AND consumer_group = 'g'`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	claim := func(leaseMs int64) lease {
		t.Helper()
		op := &claimOp{topic: "jobs", group: "g", limit: 1, leaseMs: leaseMs}
		mustSubmit(t, b, op)
		if len(op.got) != 1 {
			t.Fatalf("claimed %d deliveries, want 1", len(op.got))
		}
		return lease{topic: "jobs", group: "g", messageID: op.got[0].messageID, leaseID: op.got[0].leaseID}
	}

	old := claim(1) // expires at once
	time.Sleep(5 * time.Millisecond)
	current := claim(60_000) // the same delivery, taken again
	if current.leaseID == old.leaseID {
		t.Fatalf("the second claim kept lease %d", old.leaseID)
	}
	before := visibleAt()

	stale := &extendOp{leases: []lease{old}, leaseMs: 120_000}
	mustSubmit(t, b, stale)
	if len(stale.lost) != 1 || stale.lost[0] != old {
		t.Errorf("lost leases: got %v, want [%v]", stale.lost, old)
	}
	if got := visibleAt(); got != before {
		t.Errorf("visible_at after extending the lost lease: got %d, want %d (unchanged)", got, before)
	}

	live := &extendOp{leases: []lease{current}, leaseMs: 120_000}
	mustSubmit(t, b, live)
	if len(live.lost) != 0 {
		t.Errorf("lost leases: got %v, want none", live.lost)
	}
	if got := visibleAt(); got <= before {
		t.Errorf("visible_at after extending the current lease: got %d, want later than %d", got, before)
	}
}

// A nack or a release ends the lease: an extension of it that was already
// on its way (the extender copied the held leases just before the outcome
// was written) is reported lost and leaves the delivery's visibility as
// the nack or release set it, so a retry due in 100 ms is not pushed back
// a whole lease.
func TestAnExtensionAfterANackOrReleaseIsFenced(t *testing.T) {
	for _, tc := range []struct {
		name    string
		outcome func(lease) writeOp
		dueMs   int64 // visible_at after the outcome, relative to its write
	}{
		{"nack", func(l lease) writeOp { return &nackOp{lease: l, delayMs: 100, lastError: "failed"} }, 100},
		{"release", func(l lease) writeOp { return &releaseOp{released: []released{{lease: l}}, attempts: true} }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := gcFixture(t)
			mustSubmit(t, b, &subscribeOp{topic: "jobs", group: "g"})
			mustSubmit(t, b, &publishOp{topic: "jobs", register: true, msgs: []storedMessage{{payload: []byte("x"), metadata: "{}"}}})
			claim := &claimOp{topic: "jobs", group: "g", limit: 1, leaseMs: 60_000}
			mustSubmit(t, b, claim)
			if len(claim.got) != 1 {
				t.Fatalf("claimed %d deliveries, want 1", len(claim.got))
			}
			l := lease{topic: "jobs", group: "g", messageID: claim.got[0].messageID, leaseID: claim.got[0].leaseID}

			before := time.Now().UnixMilli()
			mustSubmit(t, b, tc.outcome(l))
			late := &extendOp{leases: []lease{l}, leaseMs: 60_000}
			mustSubmit(t, b, late)

			if len(late.lost) != 1 || late.lost[0] != l {
				t.Errorf("lost leases of the late extension: got %v, want [%v]", late.lost, l)
			}
			var visibleAt int64
			if err := b.readDB.QueryRow(`SELECT visible_at FROM queue_deliveries WHERE topic = 'jobs' AND consumer_group = 'g'`).Scan(&visibleAt); err != nil {
				t.Fatal(err)
			}
			if due := visibleAt - before; due > tc.dueMs+5_000 {
				t.Errorf("visible %d ms after the %s, want about %d: the late extension moved it", due, tc.name, tc.dueMs)
			}
		})
	}
}
