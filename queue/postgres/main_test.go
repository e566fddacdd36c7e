package postgres_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// subscription, relay and pool must stop on Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
