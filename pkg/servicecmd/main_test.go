package servicecmd_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: Run shuts
// down the telemetry it started, even when the service does not open.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
