package sqlitefile_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives the tests (database/sql
// starts one per *sql.DB until it is closed).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
