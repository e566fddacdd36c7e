package postgres

import (
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/orderflow/orderflow/queue/retry"
)

// outageReportEvery is how often an operation that keeps failing (a
// subscription's polls, the owner lock) logs that it still does.
const outageReportEvery = 30 * time.Second

// outageLog logs an operation that fails again and again while the
// server is unreachable the way an operator wants to read an outage: its
// first failure as an error record, then a warning at most every
// reportEvery while it lasts (with the count of failures and for how
// long), and a warning once the operation works again. Not one record
// per failure: a subscription polls every second or faster, and an
// outage of minutes would bury everything else.
//
// Not safe for concurrent use: each is owned by the one goroutine that
// runs the operation.
type outageLog struct {
	// failing, still and recovered are the records' messages.
	failing, still, recovered string
	// unit names the operations in the records' counts: "polls" gives
	// failed_polls.
	unit        string
	reportEvery time.Duration

	failures         int       // since the operation last worked
	since            time.Time // the first of them
	reported         time.Time // when the outage was last logged
	reportedFailures int       // failures, then
}

// failed logs a failure as the outage stands: an error record if it is
// the outage's first, a warning if the last record is reportEvery old.
func (l *outageLog) failed(logger watermill.LoggerAdapter, err error, fields watermill.LogFields) {
	now := time.Now()
	l.failures++
	switch {
	case l.failures == 1:
		l.since, l.reported, l.reportedFailures = now, now, 1
		logger.Error(l.failing, err, fields)
	case now.Sub(l.reported) >= l.reportEvery:
		retry.Warn(logger, l.still, err, fields.Copy().Add(watermill.LogFields{
			"failed_" + l.unit:                        l.failures,
			"failed_" + l.unit + "_since_last_report": l.failures - l.reportedFailures,
			"failing_for":                             now.Sub(l.since).Round(time.Millisecond).String(),
		}))
		l.reported, l.reportedFailures = now, l.failures
	}
}

// worked ends the outage, if there is one: a warning says so.
func (l *outageLog) worked(logger watermill.LoggerAdapter) {
	if l.failures == 0 {
		return
	}
	retry.Warn(logger, l.recovered, nil, watermill.LogFields{
		"failed_" + l.unit: l.failures,
		"failed_for":       time.Since(l.since).Round(time.Millisecond).String(),
	})
	l.failures = 0
}

// inOutage reports whether the operation's last run failed.
func (l *outageLog) inOutage() bool { return l.failures > 0 }
