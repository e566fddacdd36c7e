package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkWriteOps measures what each kind of write costs, from the
// request to the writer's answer, in one process with nobody else on the
// file: mostly work done while the write lock is held, which bounds the
// queue's throughput across processes (there the lock is held by one
// process or another nearly all the time). Each op is committed on its own.
//
//   - publish-N: one Publish call of N messages
//   - publish-64-after-other-writer: the same after another connection
//     wrote, so this one's page cache is cold, as between processes
//   - claim-1, claim-4 and claim-64 with 256 deliveries in flight ahead
//     of them (claims in the end-to-end runs take ~3), ack-64
//
// Run: go test -run '^$' -bench WriteOps ./sqlite/ (from queue/)
func BenchmarkWriteOps(b *testing.B) {
	const perOp = 64
	payload := make([]byte, 200)
	meta := `{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}`

	open := openBench
	publish := func(b *testing.B, be *Backend, n int) { publishBench(b, be, n, payload, meta) }
	claim := func(b *testing.B, be *Backend, n int) []claimed {
		b.Helper()
		got := claimBench(b, be, n)
		if len(got) != n {
			b.Fatalf("claimed %d, want %d", len(got), n)
		}
		return got
	}
	ack := func(b *testing.B, be *Backend, got []claimed) {
		b.Helper()
		for _, c := range got {
			if err := be.submit(&ackOp{lease{topic: "jobs", group: "g1", messageID: c.messageID, leaseID: c.leaseID}}, false); err != nil {
				b.Fatal(err)
			}
		}
		if err := be.submit(flushOp{}, true); err != nil {
			b.Fatal(err)
		}
	}
	perMessage := func(b *testing.B, n int) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
	}

	for _, n := range []int{1, 8, perOp} {
		b.Run(fmt.Sprintf("publish-%d", n), func(b *testing.B) {
			be := open(b)
			for b.Loop() {
				publish(b, be, n)
			}
			perMessage(b, n)
		})
	}
	b.Run(fmt.Sprintf("publish-%d-after-other-writer", perOp), func(b *testing.B) {
		be := open(b)
		other, err := sql.Open("sqlite3", "file:"+be.path+"?_txlock=immediate&_busy_timeout=5000")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = other.Close() })
		if _, err := other.Exec("CREATE TABLE IF NOT EXISTS other_writer (n INTEGER)"); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			b.StopTimer()
			if _, err := other.Exec("INSERT INTO other_writer VALUES (1)"); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			publish(b, be, perOp)
		}
		perMessage(b, perOp)
	})
	for _, n := range []int{1, 4, perOp} {
		b.Run(fmt.Sprintf("claim-%d", n), func(b *testing.B) {
			be := open(b)
			// Deliveries in flight ahead of the ones claimed, as with
			// four consumers of concurrency 64 each.
			publish(b, be, 4*perOp)
			for range 4 {
				claim(b, be, perOp)
			}
			for b.Loop() {
				b.StopTimer()
				publish(b, be, n)
				b.StartTimer()
				got := claim(b, be, n)
				b.StopTimer()
				ack(b, be, got)
				b.StartTimer()
			}
			perMessage(b, n)
		})
	}
	b.Run(fmt.Sprintf("ack-%d", perOp), func(b *testing.B) {
		be := open(b)
		for b.Loop() {
			b.StopTimer()
			publish(b, be, perOp)
			got := claim(b, be, perOp)
			b.StartTimer()
			ack(b, be, got)
		}
		perMessage(b, perOp)
	})
}

// BenchmarkProbe measures the read-only check a waiting subscriber makes on
// every wake-up, in the common case that finds nothing to claim (the
// group's deliveries are all in flight) and in the case that finds work.
//
// Run: go test -run '^$' -bench Probe ./sqlite/ (from queue/)
func BenchmarkProbe(b *testing.B) {
	for _, tc := range []struct {
		name  string
		ready bool
	}{{"nothing-ready", false}, {"ready", true}} {
		b.Run(tc.name, func(b *testing.B) {
			be := openBench(b)
			publishBench(b, be, 16, []byte("{}"), "{}")
			if !tc.ready {
				claimBench(b, be, 16)
			}
			for b.Loop() {
				ready, next, err := be.probe("jobs", "g1")
				if err != nil {
					b.Fatal(err)
				}
				if ready != tc.ready || (!ready && next == 0) {
					b.Fatalf("probe: got ready %v next %d, want ready %v", ready, next, tc.ready)
				}
			}
		})
	}
}

// BenchmarkLoadMessages measures reading the messages of a claim (outside
// the write lock), for a claim of 1 and of 64.
//
// Run: go test -run '^$' -bench LoadMessages ./sqlite/ (from queue/)
func BenchmarkLoadMessages(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("claim-%d", n), func(b *testing.B) {
			be := openBench(b)
			publishBench(b, be, n, make([]byte, 200), `{"k":"v"}`)
			got := claimBench(b, be, n)
			for b.Loop() {
				msgs, err := be.loadMessages(got)
				if err != nil || len(msgs) != n {
					b.Fatalf("loaded %d messages, %v; want %d", len(msgs), err, n)
				}
			}
		})
	}
}

// openBench opens a queue in a new file with group g1 subscribed to topic
// jobs; it is closed at cleanup.
func openBench(b testing.TB) *Backend {
	b.Helper()
	be, err := Open(context.Background(), filepath.Join(b.TempDir(), "q.db"), Config{GCInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = be.Close() })
	if err := be.submit(&subscribeOp{topic: "jobs", group: "g1"}, true); err != nil {
		b.Fatal(err)
	}
	return be
}

// publishBench stores n messages on jobs with one request.
func publishBench(b testing.TB, be *Backend, n int, payload []byte, meta string) {
	b.Helper()
	op := &publishOp{topic: "jobs", register: true}
	for i := range n {
		op.msgs = append(op.msgs, storedMessage{uuid: strconv.Itoa(i), payload: payload, metadata: meta})
	}
	if err := be.submit(op, true); err != nil {
		b.Fatal(err)
	}
}

// claimBench claims up to n deliveries of g1 on jobs.
func claimBench(b testing.TB, be *Backend, n int) []claimed {
	b.Helper()
	op := &claimOp{topic: "jobs", group: "g1", limit: n, leaseMs: 60_000}
	if err := be.submit(op, true); err != nil {
		b.Fatal(err)
	}
	return op.got
}

// BenchmarkCollectionWithManyTopics measures one collection (gcOp, under
// the write lock) in a file with 10,000 topics, all subscribed, of which
// one holds messages: topics are never removed, and a collection runs
// every GCInterval in each process that acked something.
//
// Run: go test -run '^$' -bench CollectionWithManyTopics ./sqlite/ (from queue/)
func BenchmarkCollectionWithManyTopics(b *testing.B) {
	be := openBench(b)
	const topics = 10_000
	for i := range topics {
		topic := fmt.Sprintf("topic-%05d", i)
		if err := be.submit(&subscribeOp{topic: topic, group: "g1"}, false); err != nil {
			b.Fatal(err)
		}
	}
	publishBench(b, be, 64, make([]byte, 200), "{}")
	for b.Loop() {
		if err := be.submit(&gcOp{batch: 5000, orphanBefore: 0}, true); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCollectionWithOrphanBacklog measures one collection (gcOp,
// under the write lock) of a file holding 100,000 messages of a topic
// nobody subscribed to, none yet older than the orphan retention: what a
// topic nobody reads (order.events) holds most of the time, and looked at
// every GCInterval in each process that acked something.
//
// Run: go test -run '^$' -bench CollectionWithOrphanBacklog ./sqlite/ (from queue/)
func BenchmarkCollectionWithOrphanBacklog(b *testing.B) {
	be := openBench(b)
	const backlog = 100_000
	payload := make([]byte, 200)
	for i := 0; i < backlog; i += 1000 {
		op := &publishOp{topic: "unread", register: true}
		for j := range 1000 {
			op.msgs = append(op.msgs, storedMessage{uuid: strconv.Itoa(i + j), payload: payload, metadata: "{}"})
		}
		if err := be.submit(op, true); err != nil {
			b.Fatal(err)
		}
	}
	orphanBefore := be.nowMs() - time.Hour.Milliseconds()
	for b.Loop() {
		op := &gcOp{batch: 5000, orphanBefore: orphanBefore}
		if err := be.submit(op, true); err != nil {
			b.Fatal(err)
		}
		if op.deleted != 0 {
			b.Fatalf("deleted %d young messages", op.deleted)
		}
	}
}
