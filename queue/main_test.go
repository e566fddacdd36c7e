package queue_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// Router, subscription and backend a test opens must stop on Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
