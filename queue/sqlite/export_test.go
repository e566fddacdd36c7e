package sqlite

// For the package's external tests.
var (
	HoldSQLiteLock         = holdSQLiteLock
	RequirePublishWaitsFor = requirePublishWaitsFor
)

// FileOf is the file b's SQLite connections opened, which b names the WAL
// it watches and its lock files after.
func FileOf(b *Backend) string { return b.file }
