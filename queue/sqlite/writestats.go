package sqlite

import "sync/atomic"

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

// opKinds lists the kinds in the order of writeCounters.ops.
var opKinds = [...]string{OpPublish, OpClaim, OpAck, OpNack, OpRelease, OpExtend, OpSubscribe, OpGC, OpDeadLetter, OpOther}

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
}

// writeCounters are the writer's tallies behind WriteStats.
type writeCounters struct {
	transactions atomic.Int64
	ops          [len(opKinds)]atomic.Int64
}

// count tallies one committed transaction carrying the ops batch[idx].
func (c *writeCounters) count(batch []writeRequest, idx []int) {
	c.transactions.Add(1)
	for _, i := range idx {
		c.ops[opKind(batch[i].op)].Add(1)
	}
}

func opKind(op writeOp) int {
	switch op.(type) {
	case *publishOp:
		return 0
	case *claimOp:
		return 1
	case *ackOp:
		return 2
	case *nackOp:
		return 3
	case *releaseOp:
		return 4
	case *extendOp:
		return 5
	case *subscribeOp:
		return 6
	case *gcOp, *vacuumOp:
		return 7
	case *putDeadLetterOp, *deleteDeadLettersOp:
		return 8
	default:
		return 9
	}
}

// WriteStats returns what this process's writer has committed so far.
func (b *Backend) WriteStats() WriteStats {
	s := WriteStats{Transactions: b.writeCounts.transactions.Load(), Operations: make(map[string]int64, len(opKinds))}
	for i, kind := range opKinds {
		s.Operations[kind] = b.writeCounts.ops[i].Load()
	}
	return s
}
