package app_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: the
// timeout loop stops with its context, and every database a test opens must
// be closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
