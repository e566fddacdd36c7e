package web

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: Serve
// returns only once no handler runs, and the requests a page fans out
// (orders, counts, faults) end with it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
