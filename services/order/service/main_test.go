package service_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: Run stops
// everything the service started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
