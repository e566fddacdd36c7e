package servicedb_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// database and unit of work a test opens must be closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
