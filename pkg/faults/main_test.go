package faults_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: the tests'
// own goroutines (concurrent Set and Snapshot) must end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
