package sqlite

import (
	"sync/atomic"
	"time"
)

// Operation kinds counted by WriteStats.
const (
	OpPublish    = "publish"
	OpClaim      = "claim"
	OpAck        = "ack"
	OpNack       = "nack"
	OpRelease    = "release"
	OpExtend     = "extend"
	OpSubscribe  = "subscribe"
	OpGC         = "gc" // garbage collection and the vacuum after it
	OpDeadLetter = "dead_letter"
	OpOther      = "other"
)

// The indexes of the kinds in writeCounters.ops and opKinds.
const (
	kindPublish = iota
	kindClaim
	kindAck
	kindNack
	kindRelease
	kindExtend
	kindSubscribe
	kindGC
	kindDeadLetter
	kindOther
	numKinds
)

var opKinds = [numKinds]string{
	kindPublish: OpPublish, kindClaim: OpClaim, kindAck: OpAck, kindNack: OpNack,
	kindRelease: OpRelease, kindExtend: OpExtend, kindSubscribe: OpSubscribe,
	kindGC: OpGC, kindDeadLetter: OpDeadLetter, kindOther: OpOther,
}

// WriteStats counts what this process's writer committed to the queue file
// since Open: its write transactions, each of which took the file's one
// write lock (shared by every process), and the operations they carried.
// Group commit shows as more operations than transactions. Checkpoints and
// vacuums are not counted.
type WriteStats struct {
	Transactions int64
	// Operations by kind (OpPublish, …): a Publish of several messages is
	// one operation, as is a claim of several deliveries or an ack.
	Operations map[string]int64
	// LockWait is how long the writer waited for the file's write lock
	// (its turn on the lock file, then BEGIN IMMEDIATE) before its
	// transactions could start; LockHeld how long its write transactions
	// held the lock, from BEGIN granted to COMMIT or ROLLBACK returned
	// (truncating checkpoints, which take the lock outside a transaction,
	// are not counted). Summed over the
	// processes on one file, LockHeld near the wall time says that the
	// file's one write lock is what limits them; LockWait says how long
	// each process queued for it.
	LockWait, LockHeld time.Duration
}

// writeCounters are the writer's tallies behind WriteStats.
type writeCounters struct {
	transactions atomic.Int64
	ops          [numKinds]atomic.Int64
	lockWait     atomic.Int64 // nanoseconds
	lockHeld     atomic.Int64 // nanoseconds
	// queued counts the requests handed to the writer's queue, busyBegins
	// the BEGINs another connection's lock kept out: what tests wait on to
	// know that requests queue in a given order behind a held lock.
	queued     atomic.Int64
	busyBegins atomic.Int64
}

// count tallies one committed transaction carrying the ops batch[idx].
func (c *writeCounters) count(batch []writeRequest, idx []int) {
	c.transactions.Add(1)
	for _, i := range idx {
		c.ops[opKind(batch[i].op)].Add(1)
	}
}

// opKind is the index of op's kind.
func opKind(op writeOp) int {
	switch op.(type) {
	case *publishOp:
		return kindPublish
	case *claimOp:
		return kindClaim
	case *ackOp:
		return kindAck
	case *nackOp:
		return kindNack
	case *releaseOp:
		return kindRelease
	case *extendOp:
		return kindExtend
	case *subscribeOp:
		return kindSubscribe
	case *gcOp, *vacuumOp:
		return kindGC
	case *putDeadLetterOp, *deleteDeadLettersOp:
		return kindDeadLetter
	default:
		return kindOther
	}
}

// WriteStats returns what this process's writer has committed so far.
func (b *Backend) WriteStats() WriteStats {
	s := WriteStats{
		Transactions: b.writeCounts.transactions.Load(),
		Operations:   make(map[string]int64, numKinds),
		LockWait:     time.Duration(b.writeCounts.lockWait.Load()),
		LockHeld:     time.Duration(b.writeCounts.lockHeld.Load()),
	}
	for i, kind := range opKinds {
		s.Operations[kind] = b.writeCounts.ops[i].Load()
	}
	return s
}
