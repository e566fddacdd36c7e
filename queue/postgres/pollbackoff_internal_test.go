package postgres

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// Failed polls back off exponentially from RetryInterval up to
// MaxRetryInterval, each wait jittered down by up to a half; a poll that
// works starts the next outage from RetryInterval again.
func TestFailedPollsBackOffWithJitter(t *testing.T) {
	p := &pollBackoff{min: time.Millisecond, max: 10 * time.Millisecond, busyWait: time.Millisecond,
		retry: 100 * time.Millisecond, maxRetry: 2 * time.Second, outage: newPollOutageLog(time.Hour), busy: new(atomic.Bool)}
	down := errors.New("connection refused")
	log := watermill.NopLogger{}
	ceiling := 100 * time.Millisecond
	distinct := map[time.Duration]bool{}
	for i := range 12 {
		wait := p.HandleError(log, false, down)
		if wait < ceiling/2 || wait > ceiling {
			t.Fatalf("failed poll %d: waits %s, want within [%s, %s]", i+1, wait, ceiling/2, ceiling)
		}
		distinct[wait] = true
		ceiling = min(2*ceiling, 2*time.Second)
	}
	if len(distinct) < 6 {
		t.Errorf("got %d distinct waits in 12 failed polls, want them jittered", len(distinct))
	}
	if wait := p.HandleError(log, true, nil); wait != time.Millisecond {
		t.Errorf("an idle poll after the outage waits %s, want the poll interval 1ms", wait)
	}
	if wait := p.HandleError(log, false, down); wait < 50*time.Millisecond || wait > 100*time.Millisecond {
		t.Errorf("the first failed poll of the next outage waits %s, want within [50ms, 100ms]", wait)
	}
}
