package tracing_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: the
// routers and GoChannels the tests run must stop.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
