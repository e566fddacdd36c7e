package sqlite

import "time"

// For the package's external tests.
var (
	HoldSQLiteLock         = holdSQLiteLock
	RequirePublishWaitsFor = requirePublishWaitsFor
)

// WithSafetyNets sets both safety nets behind c's change watcher to d:
// how often its event-driven watcher also reads PRAGMA data_version (in
// case an event was missed), and the longest a subscriber waits unwoken.
// A test that sets them to an hour sees that the watcher alone wakes the
// subscribers.
func WithSafetyNets(c Config, d time.Duration) Config {
	c.versionCheckEvery = d
	c.waitSafetyNet = d
	return c
}

// WithAloneWait sets how long a message whose previous delivery was
// abandoned waits to run alone before it runs beside the others.
func WithAloneWait(c Config, d time.Duration) Config {
	c.aloneWait = d
	return c
}

// FileOf is the file b's SQLite connections opened, which b names the
// changes file it watches and rings and its lock files after.
func FileOf(b *Backend) string { return b.file }

// Watching reports whether b's change watcher watches the changes file.
func Watching(b *Backend) bool { return b.watching.Load() }

// WithBeforeLooking has c's change watcher call f once a subscriber first
// waits, before the watcher first looks for changes.
func WithBeforeLooking(c Config, f func()) Config {
	c.beforeLooking = f
	return c
}

// BusyBegins counts b's BEGINs that another connection's lock kept out.
func BusyBegins(b *Backend) int64 { return b.writeCounts.busyBegins.Load() }

// Queued counts the requests handed to b's writer.
func Queued(b *Backend) int64 { return b.writeCounts.queued.Load() }
