package telemetry

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: Shutdown
// stops the batch span processor and its exports, even against an
// unreachable collector.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
