package servicehost_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: Run stops
// the router, forwarder, retention loop and admin server it starts, and
// Close releases what Open opened.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
