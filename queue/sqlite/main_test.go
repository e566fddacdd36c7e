package sqlite_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// Subscribe loop, outcome waiter and lease extender, and the store's writer,
// change watcher, garbage collector and checkpointer, must stop on Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
