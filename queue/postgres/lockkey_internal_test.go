package postgres

import (
	"hash/fnv"
	"testing"
)

// The group lock key is the one every earlier version used: consumers of
// one group from two versions, side by side during a rolling upgrade, must
// take turns on one lock in every schema (a key with the schema in it made
// an old and a new payment charge the same batch, outside public).
func TestGroupLockKeyIsTheOneOfEarlierVersions(t *testing.T) {
	earlier := func(topic, group string) int64 { // groupLockKey as of e64159c
		h := fnv.New64a()
		_, _ = h.Write([]byte("orderflow.queue\x00" + topic + "\x00" + group))
		return int64(h.Sum64())
	}
	for _, tc := range []struct{ topic, group string }{{"orders", "billing"}, {"payment.commands", "payment"}} {
		if got, want := groupLockKey(tc.topic, tc.group), earlier(tc.topic, tc.group); got != want {
			t.Errorf("groupLockKey(%q, %q): got %d, want the earlier versions' %d", tc.topic, tc.group, got, want)
		}
	}
}
