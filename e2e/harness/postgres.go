package harness

import "github.com/orderflow/orderflow/queue/postgres/pgtest"

// PostgresEnv names the PostgreSQL server of the Postgres-queue variants.
const PostgresEnv = pgtest.EnvURL

// SkipTB is TB plus Skipf.
type SkipTB interface {
	TB
	Skipf(format string, args ...any)
}

// PostgresQueueURL returns a queue URL on a fresh schema of the server
// named by ORDERFLOW_TEST_POSTGRES_URL (its search_path), dropped when the
// test ends, so that runs never see each other's messages. It skips the
// test when the variable is unset and fails it when the server does not
// answer. Call it before Start, so that the schema outlives the services.
func PostgresQueueURL(t SkipTB) string {
	t.Helper()
	return pgtest.SchemaURL(t, "e2e")
}
