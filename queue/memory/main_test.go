package memory_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// subscription's forwarder and outcome waiter must stop on Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
