package postgres

import (
	"hash/fnv"
	"testing"
)

// In schema public the key is the one of the versions before the schema
// was part of it: old and new consumers of a group, side by side during a
// rolling upgrade, must take turns on one lock. Elsewhere the schema
// makes the key.
func TestGroupLockKeyKeepsTheOldKeyInPublic(t *testing.T) {
	oldKey := func(topic, group string) int64 { // the earlier versions' groupLockKey
		h := fnv.New64a()
		_, _ = h.Write([]byte("orderflow.queue\x00" + topic + "\x00" + group))
		return int64(h.Sum64())
	}
	if got, want := groupLockKey("public", "orders", "billing"), oldKey("orders", "billing"); got != want {
		t.Errorf("public: got %d, want the old key %d", got, want)
	}
	if a, b := groupLockKey("tenant_a", "orders", "billing"), groupLockKey("tenant_b", "orders", "billing"); a == b || a == oldKey("orders", "billing") {
		t.Errorf("other schemas: got keys %d and %d (old %d), want three different keys", a, b, oldKey("orders", "billing"))
	}
}
