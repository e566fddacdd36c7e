package sqlite

// For the package's external tests.
var (
	HoldSQLiteLock         = holdSQLiteLock
	RequirePublishWaitsFor = requirePublishWaitsFor
)
