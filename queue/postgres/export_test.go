package postgres

import "time"

// For the package's external tests.
var WriteRefused = writeRefused

// WithAloneWait sets how long a message whose previous delivery was
// abandoned waits to run alone before it runs beside the others.
func WithAloneWait(c Config, d time.Duration) Config {
	c.aloneWait = d
	return c
}

// WithPollReportEvery sets how often a subscription whose polls keep
// failing says so.
func WithPollReportEvery(c Config, d time.Duration) Config {
	c.pollReportEvery = d
	return c
}
