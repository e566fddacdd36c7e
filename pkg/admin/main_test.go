package admin_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: Serve
// returns only once its server goroutine has.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
