// Package backendtest holds test helpers shared by the queue's backend
// packages (sqlite, postgres), for the behaviour every backend must have.
package backendtest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/retry"
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

// ReplayFunc replays dead letter id of b: queue.ReplayDeadLetter, which
// this package cannot import (the queue package imports the backends).
type ReplayFunc func(ctx context.Context, b backend.Backend, id int64) error

// ReplayStamped checks, through replay, that b carries a replay's stamp
// (backend.MetadataReplayedFrom, MetadataReplayedAt) and the dead letter's
// backend.MetadataDeadLetterReason to the consumer, beside the message's
// own metadata; that a dead letter of the replayed message keeps the stamp
// (the retry middleware keeps every key retry.IsDeliveryKey does not name);
// and that replaying that one overwrites the stamp: the second delivery
// has the same keys as the first, naming the second dead letter and a
// later time. It uses topic, which must hold no messages or dead letters
// yet.
func ReplayStamped(t *testing.T, b backend.Backend, replay ReplayFunc, topic string) {
	t.Helper()
	const group = "billing"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: group})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Close() }()
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}

	store := b.DeadLetters()
	failed := time.Now().UTC().Add(-time.Minute)
	put := func(md map[string]string) int64 {
		t.Helper()
		if err := store.Put(ctx, backend.DeadLetter{
			MessageUUID: "replayed-1", Topic: topic, ConsumerGroup: group, Payload: []byte(`{}`),
			Metadata: md, Attempts: 3, LastError: "boom", FirstFailedAt: failed, LastFailedAt: failed, DeadAt: failed,
		}); err != nil {
			t.Fatal(err)
		}
		dls, err := store.List(ctx, backend.DeadLetterFilter{Topic: topic})
		if err != nil {
			t.Fatal(err)
		}
		if len(dls) != 1 {
			t.Fatalf("got %d dead letters on %s, want 1", len(dls), topic)
		}
		return dls[0].ID
	}
	// replayed replays dead letter id and returns the message delivered,
	// acked, after checking its stamp.
	replayed := func(id int64, reason string, notBefore time.Time) *message.Message {
		t.Helper()
		start := time.Now()
		if err := replay(ctx, b, id); err != nil {
			t.Fatalf("replay %d: %v", id, err)
		}
		end := time.Now()
		var m *message.Message
		select {
		case m = <-ch:
		case <-ctx.Done():
			t.Fatalf("replay of dead letter %d not delivered", id)
		}
		m.Ack()
		if got, want := m.Metadata.Get(backend.MetadataReplayedFrom), strconv.FormatInt(id, 10); got != want {
			t.Errorf("%s: got %q, want %q", backend.MetadataReplayedFrom, got, want)
		}
		at, err := time.Parse(time.RFC3339Nano, m.Metadata.Get(backend.MetadataReplayedAt))
		if err != nil {
			t.Errorf("%s: %v", backend.MetadataReplayedAt, err)
		} else if at.Location() != time.UTC || at.Before(start.Add(-time.Millisecond)) || at.After(end) || !at.After(notBefore) {
			t.Errorf("%s: got %s, want in UTC, between %s and %s, after %s", backend.MetadataReplayedAt, at, start, end, notBefore)
		}
		for k, want := range map[string]string{backend.MetadataDeadLetterReason: reason, "traceparent": traceParent, "type": "billing.Charge"} {
			if got := m.Metadata.Get(k); got != want {
				t.Errorf("replay of dead letter %d: metadata %s: got %q, want %q", id, k, got, want)
			}
		}
		return m
	}

	first := put(map[string]string{"traceparent": traceParent, "type": "billing.Charge", backend.MetadataDeadLetterReason: "max attempts"})
	m1 := replayed(first, "max attempts", time.Time{})
	at1, _ := time.Parse(time.RFC3339Nano, m1.Metadata.Get(backend.MetadataReplayedAt))

	// The replayed message fails again: its dead letter keeps the stamp.
	again := make(map[string]string)
	for k, v := range m1.Metadata {
		if !retry.IsDeliveryKey(k) {
			again[k] = v
		}
	}
	again[backend.MetadataDeadLetterReason] = "permanent"
	second := put(again)
	dl, err := store.Get(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dl.Metadata[backend.MetadataReplayedFrom], strconv.FormatInt(first, 10); got != want {
		t.Errorf("dead letter of a replayed message: %s: got %q, want %q (the stamp of the replay)", backend.MetadataReplayedFrom, got, want)
	}

	m2 := replayed(second, "permanent", at1)
	if got, want := slices.Sorted(maps.Keys(m2.Metadata)), slices.Sorted(maps.Keys(m1.Metadata)); !slices.Equal(got, want) {
		t.Errorf("second replay's metadata keys: got %v, want the first's %v", got, want)
	}
	if left, err := store.List(ctx, backend.DeadLetterFilter{Topic: topic}); err != nil || len(left) != 0 {
		t.Errorf("dead letters after the replays: got %d (%v), want none", len(left), err)
	}
}

// traceParent is a W3C traceparent a replay must keep.
const traceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
