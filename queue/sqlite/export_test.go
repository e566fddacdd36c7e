package sqlite

import "time"

// For the package's external tests.
var (
	HoldSQLiteLock         = holdSQLiteLock
	RequirePublishWaitsFor = requirePublishWaitsFor
)

// WithVersionCheckEvery sets how often c's event-driven change watcher
// also reads PRAGMA data_version, its safety net for a missed event.
func WithVersionCheckEvery(c Config, d time.Duration) Config {
	c.versionCheckEvery = d
	return c
}

// FileOf is the file b's SQLite connections opened, which b names the
// changes file it watches and rings and its lock files after.
func FileOf(b *Backend) string { return b.file }
