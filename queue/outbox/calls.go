package outbox

import (
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/orderflow/orderflow/queue/retry"
)

// hungCallFactor times AckDeadline is how long a destination call may run
// before the forwarder stops waiting for it: a call can hang far longer
// than any answer takes (a PostgreSQL statement on a connection cut
// without a reset waits out TCP's retransmissions, about 15 minutes),
// while a new call, on another connection, may go through.
const hungCallFactor = 10

// destinationCalls tracks the destination's Publish calls in progress, in
// either mode (a batch published together, a message alone), to tell a
// destination that does not answer. One still running when a forwarding
// transaction would begin, or a message would be forwarded alone, waits
// past its ack deadline on a destination that does not answer: another
// call would only hang beside it, and its transaction would hold the
// service's write lock for another ack deadline. So nothing is forwarded
// while it runs, up to hungCallFactor ack deadlines; then a new call is
// tried beside it. It is safe for concurrent use.
type destinationCalls struct {
	giveUp time.Duration // how long a call may run before one is tried beside it
	logger watermill.LoggerAdapter

	mu      sync.Mutex
	next    uint64
	running map[uint64]time.Time // the start of each call in progress
	// waitLogged and givenUpLogged say the current wait was logged.
	waitLogged, givenUpLogged bool
}

// newDestinationCalls tracks calls of a forwarder whose ack deadline is
// ackDeadline, logging to logger.
func newDestinationCalls(ackDeadline time.Duration, logger watermill.LoggerAdapter) *destinationCalls {
	return &destinationCalls{giveUp: hungCallFactor * ackDeadline, logger: logger, running: map[uint64]time.Time{}}
}

// begin records a call starting now; the func it returns records its end
// (call it once, deferred: a panic or runtime.Goexit in the call must end
// it too).
func (c *destinationCalls) begin() (end func()) {
	c.mu.Lock()
	id := c.next
	c.next++
	c.running[id] = time.Now()
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(c.running, id)
		c.mu.Unlock()
	}
}

// hanging reports whether a call that started less than hungCallFactor ack
// deadlines before now is still running: then nothing more should be
// forwarded yet. It logs, once per wait, that forwarding waits, and that
// it stopped waiting for calls older than that.
func (c *destinationCalls) hanging(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	var oldest time.Duration
	young, old := 0, 0
	for _, started := range c.running {
		age := now.Sub(started)
		oldest = max(oldest, age)
		if age < c.giveUp {
			young++
		} else {
			old++
		}
	}
	if len(c.running) == 0 {
		c.waitLogged, c.givenUpLogged = false, false
		return false
	}
	if young > 0 && !c.waitLogged {
		c.waitLogged = true
		retry.Warn(c.logger, "Forwarding waits for the queue to answer a call; the service's own writes go on and its outbox grows", nil,
			watermill.LogFields{"calls": len(c.running), "oldest": oldest.Round(time.Millisecond).String()})
	}
	if young == 0 && old > 0 && !c.givenUpLogged {
		c.givenUpLogged = true
		c.logger.Error("A call to the queue has not returned; forwarding tries again beside it", nil,
			watermill.LogFields{"calls": old, "oldest": oldest.Round(time.Millisecond).String(), "given_up_after": c.giveUp.String()})
	}
	return young > 0
}
