package upstream

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: no request
// may outlive its test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
