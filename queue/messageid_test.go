package queue_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/orderflow/orderflow/queue"
)

func TestNewMessageIDIsATimeOrderedUUID(t *testing.T) {
	prev := ""
	for range 1000 {
		id := queue.NewMessageID()
		u, err := uuid.Parse(id)
		if err != nil {
			t.Fatalf("NewMessageID() = %q: not a UUID: %v", id, err)
		}
		if got := u.Version(); got != 7 {
			t.Fatalf("NewMessageID() = %q: got version %d, want 7", id, got)
		}
		if id <= prev {
			t.Fatalf("NewMessageID() = %q after %q: got an id that does not sort after the previous one", id, prev)
		}
		prev = id
	}
}
