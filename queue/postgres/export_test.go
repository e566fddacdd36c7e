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

// WithOutageReportEvery sets how often an operation that keeps failing
// (a subscription's polls, the owner lock) says so.
func WithOutageReportEvery(c Config, d time.Duration) Config {
	c.reportOutageEvery = d
	return c
}

// WithOwnerCheckEvery sets how often the owner lock's session is checked.
func WithOwnerCheckEvery(c Config, d time.Duration) Config {
	c.ownerCheckEvery = d
	return c
}
