// Package backendtest holds test helpers shared by the queue's backend
// packages (sqlite, postgres), for the behaviour every backend must have.
package backendtest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
)

// ExpectClosed fails the test for every message ch hands out before it
// closes, and fatally if it is still open after 15 s: what a subscription
// whose context ended must do.
func ExpectClosed(t testing.TB, ch <-chan *message.Message) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				return
			}
			t.Errorf("message %s handed out after the subscription's context ended", m.UUID)
		case <-timeout:
			t.Fatal("channel still open 15s after the subscription's context ended")
		}
	}
}

// SubscribeRacingClose calls Subscribe and Close of a fresh subscriber at
// the same time, rounds times (run it under -race): a process told to stop
// while its router subscribes. Subscribe must either fail or return a
// channel that closes; nothing may panic (a WaitGroup reused while Close
// waits on it) or keep running after Close returned.
func SubscribeRacingClose(t *testing.T, rounds int, newSubscriber func() message.Subscriber, topic string) {
	t.Helper()
	for range rounds {
		sub := newSubscriber()
		var (
			wg     sync.WaitGroup
			ch     <-chan *message.Message
			subErr error
		)
		wg.Go(func() { ch, subErr = sub.Subscribe(context.Background(), topic) })
		wg.Go(func() { _ = sub.Close() })
		wg.Wait()
		if subErr == nil {
			ExpectClosed(t, ch)
		}
	}
}

// ExpectAbandonedRuns fails the test unless m carries
// backend.MetadataAbandoned want: its delivery's count of abandoned runs
// alone. when says at which point of the test ("" for none).
func ExpectAbandonedRuns(t testing.TB, m *message.Message, want, when string) {
	t.Helper()
	if got := m.Metadata.Get(backend.MetadataAbandoned); got != want {
		if when != "" {
			when = " " + when
		}
		t.Errorf("%s's abandoned runs%s: got %q, want %q", m.UUID, when, got, want)
	}
}

// DeadLettersBefore checks DeadLetterFilter.DeadBefore on store: List and
// Purge keep only the dead letters last dead-lettered before it, and the
// other filters still apply. It uses topic, which must hold no dead
// letters yet.
func DeadLettersBefore(t *testing.T, store backend.DeadLetterStore, topic string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	put := func(uuid, group string, deadAt time.Time) {
		t.Helper()
		err := store.Put(ctx, backend.DeadLetter{MessageUUID: uuid, Topic: topic, ConsumerGroup: group, Payload: []byte("{}"),
			Attempts: 1, LastError: "boom", FirstFailedAt: deadAt, LastFailedAt: deadAt, DeadAt: deadAt})
		if err != nil {
			t.Fatalf("put %s: %v", uuid, err)
		}
	}
	put("three-days", "g1", now.Add(-72*time.Hour))
	put("two-days", "g2", now.Add(-48*time.Hour))
	put("one-hour", "g1", now.Add(-time.Hour))
	uuids := func(f backend.DeadLetterFilter) []string {
		t.Helper()
		f.Topic = topic
		got, err := store.List(ctx, f)
		if err != nil {
			t.Fatalf("list %+v: %v", f, err)
		}
		var out []string
		for _, dl := range got {
			out = append(out, dl.MessageUUID)
		}
		return out
	}
	dayAgo := now.Add(-24 * time.Hour)
	if got, want := uuids(backend.DeadLetterFilter{DeadBefore: dayAgo}), []string{"three-days", "two-days"}; !equal(got, want) {
		t.Errorf("list dead before a day ago: got %v, want %v", got, want)
	}
	if got, want := uuids(backend.DeadLetterFilter{DeadBefore: dayAgo, ConsumerGroup: "g2"}), []string{"two-days"}; !equal(got, want) {
		t.Errorf("list dead before a day ago of g2: got %v, want %v", got, want)
	}
	n, err := store.Purge(ctx, backend.DeadLetterFilter{Topic: topic, ConsumerGroup: "g1", DeadBefore: dayAgo})
	if err != nil {
		t.Fatalf("purge: %v", err)
	}
	if n != 1 {
		t.Errorf("purge dead before a day ago of g1: got %d purged, want 1", n)
	}
	if got, want := uuids(backend.DeadLetterFilter{}), []string{"two-days", "one-hour"}; !equal(got, want) {
		t.Errorf("left after the purge: got %v, want %v", got, want)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// DropGroupRefused checks that d refuses to drop group of topic with
// want (wrapped), in an error that names both.
func DropGroupRefused(t *testing.T, d backend.GroupDropper, topic, group string, want error) {
	t.Helper()
	_, err := d.DropGroup(context.Background(), topic, group)
	if !errors.Is(err, want) {
		t.Errorf("drop %s/%s: got %v, want %v", topic, group, err, want)
		return
	}
	if msg := err.Error(); !strings.Contains(msg, `"`+topic+`"`) || !strings.Contains(msg, `"`+group+`"`) {
		t.Errorf("drop %s/%s: error %q does not name both", topic, group, msg)
	}
}
