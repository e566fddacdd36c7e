package postgres_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// subscription, relay and pool must stop on Close.
//
// Ignored: the goroutines of the universal suite's subscriber multiplier
// (Watermill's pubsub/tests, used by TestConcurrentSubscribe and
// TestPublishSubscribeInOrder). It forwards each of its subscribers'
// messages to one unbuffered channel, and once the test has read all it
// expected it stops reading; a message delivered again after that
// (at-least-once: a redelivery) leaves the forwarding goroutine blocked on
// that channel for good, and the one waiting for it too. The suite's helper
// leaks them, not this package (seen once in a CI run on a slow machine).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/ThreeDotsLabs/watermill/internal/subscriber.(*multiplier).Subscribe.func2"),
		goleak.IgnoreAnyFunction("github.com/ThreeDotsLabs/watermill/internal/subscriber.(*multiplier).Subscribe.func3"),
	)
}
