package postgres_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/backend/backendtest"
)

func TestDeadLetters(t *testing.T) {
	b := openBackend(t, testDSN(t), fastConfig())
	store := b.DeadLetters()
	ctx := context.Background()

	first := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	dl := backend.DeadLetter{
		MessageUUID:   "m1",
		Topic:         "orders",
		ConsumerGroup: "billing",
		Payload:       []byte{0xff, 0x00, 0xfe}, // not JSON, not UTF-8
		Metadata:      map[string]string{"traceparent": "00-abc-def-01"},
		Attempts:      5,
		LastError:     "boom",
		FirstFailedAt: first,
		LastFailedAt:  first.Add(time.Minute),
	}
	puts := []backend.DeadLetter{
		dl,
		dl, // the same (group, uuid) again: ignored
		{MessageUUID: "m1", Topic: "orders", ConsumerGroup: "shipping", Attempts: 1, LastError: "x"},
		{MessageUUID: "m2", Topic: "payments", ConsumerGroup: "billing", Attempts: 2, LastError: "y"},
	}
	for i, p := range puts {
		if err := store.Put(ctx, p); err != nil {
			t.Fatalf("Put #%d: %v", i, err)
		}
	}
	if err := store.Put(ctx, backend.DeadLetter{Topic: "orders"}); err == nil {
		t.Error("Put without uuid and group: got nil error, want one")
	}

	all, err := store.List(ctx, backend.DeadLetterFilter{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(all) != 3 {
		t.Fatalf("List after 4 puts (one duplicate): got %d dead letters, want 3", len(all))
	}

	got := all[0]
	if got.ID == 0 || got.DeadAt.IsZero() {
		t.Errorf("stored dead letter: id %d, dead_at %v; want both set", got.ID, got.DeadAt)
	}
	want := dl
	want.ID, want.DeadAt, want.PayloadSize = got.ID, got.DeadAt, len(dl.Payload)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stored dead letter:\n got %+v\nwant %+v", got, want)
	}

	filters := []struct {
		name string
		f    backend.DeadLetterFilter
		want []string // topic/group of the results, in id order
	}{
		{"all", backend.DeadLetterFilter{}, []string{"orders/billing", "orders/shipping", "payments/billing"}},
		{"topic", backend.DeadLetterFilter{Topic: "orders"}, []string{"orders/billing", "orders/shipping"}},
		{"group", backend.DeadLetterFilter{ConsumerGroup: "billing"}, []string{"orders/billing", "payments/billing"}},
		{"both", backend.DeadLetterFilter{Topic: "payments", ConsumerGroup: "billing"}, []string{"payments/billing"}},
		{"limit", backend.DeadLetterFilter{Limit: 1}, []string{"orders/billing"}},
		{"no match", backend.DeadLetterFilter{Topic: "nope"}, nil},
	}
	for _, tc := range filters {
		t.Run("List/"+tc.name, func(t *testing.T) {
			dls, err := store.List(ctx, tc.f)
			if err != nil {
				t.Fatalf("List(%+v): %v", tc.f, err)
			}
			var names []string
			for _, d := range dls {
				names = append(names, d.Topic+"/"+d.ConsumerGroup)
			}
			if !reflect.DeepEqual(names, tc.want) {
				t.Errorf("List(%+v): got %v, want %v", tc.f, names, tc.want)
			}
		})
	}

	if g, err := store.Get(ctx, got.ID); err != nil || g.MessageUUID != "m1" {
		t.Errorf("Get(%d): got %+v, %v; want m1", got.ID, g, err)
	}
	if _, err := store.Get(ctx, 987654); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Get(unknown): got %v, want ErrNotFound", err)
	}
	if err := store.Delete(ctx, got.ID); err != nil {
		t.Errorf("Delete(%d): %v", got.ID, err)
	}
	if err := store.Delete(ctx, got.ID); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("second Delete(%d): got %v, want ErrNotFound", got.ID, err)
	}
	if _, err := store.Get(ctx, got.ID); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Get(deleted): got %v, want ErrNotFound", err)
	}

	n, err := store.Purge(ctx, backend.DeadLetterFilter{ConsumerGroup: "billing"})
	if err != nil || n != 1 {
		t.Errorf("Purge(group billing): got %d, %v; want 1, nil", n, err)
	}
	n, err = store.Purge(ctx, backend.DeadLetterFilter{})
	if err != nil || n != 1 {
		t.Errorf("Purge(all): got %d, %v; want 1, nil", n, err)
	}
	if dls, _ := store.List(ctx, backend.DeadLetterFilter{}); len(dls) != 0 {
		t.Errorf("List after purging all: got %d, want 0", len(dls))
	}
}

// A last error that is not storable text (invalid UTF-8, NUL) is stored
// with those bytes replaced, not refused.
func TestPutStoresAnyLastError(t *testing.T) {
	b := openBackend(t, testDSN(t), fastConfig())
	ctx := context.Background()
	if err := b.DeadLetters().Put(ctx, backend.DeadLetter{
		MessageUUID: "m-1", Topic: "orders", ConsumerGroup: "g", Attempts: 1, LastError: "a\xffb\x00c",
	}); err != nil {
		t.Fatalf("put: %v", err)
	}
	dls, err := b.DeadLetters().List(ctx, backend.DeadLetterFilter{})
	if err != nil || len(dls) != 1 {
		t.Fatalf("list: got %d, %v, want 1", len(dls), err)
	}
	if got, want := dls[0].LastError, "a\uFFFDb\uFFFDc"; got != want {
		t.Errorf("last error: got %q, want %q", got, want)
	}
}

// The first failure's time comes from the server and the others from the
// host that dead-letters the message: a host whose clock is behind does
// not store a last failure before the first, nor a dead-lettering before
// either.
func TestPutKeepsTheFailureTimesInOrder(t *testing.T) {
	b := openBackend(t, testDSN(t), fastConfig())
	ctx := context.Background()
	first := time.Now().UTC().Truncate(time.Microsecond)
	behind := first.Add(-5 * time.Second) // the host's clock, 5 s behind the server's
	if err := b.DeadLetters().Put(ctx, backend.DeadLetter{
		MessageUUID: "m-1", Topic: "orders", ConsumerGroup: "g", Attempts: 5, LastError: "boom",
		FirstFailedAt: first, LastFailedAt: behind, DeadAt: behind,
	}); err != nil {
		t.Fatalf("put: %v", err)
	}
	dls, err := b.DeadLetters().List(ctx, backend.DeadLetterFilter{})
	if err != nil || len(dls) != 1 {
		t.Fatalf("list: got %d, %v, want 1", len(dls), err)
	}
	dl := dls[0]
	if !dl.FirstFailedAt.Equal(first) {
		t.Errorf("first failure: got %s, want %s", dl.FirstFailedAt, first)
	}
	if dl.LastFailedAt.Before(dl.FirstFailedAt) {
		t.Errorf("last failure %s before the first %s", dl.LastFailedAt, dl.FirstFailedAt)
	}
	if dl.DeadAt.Before(dl.LastFailedAt) {
		t.Errorf("dead-lettered at %s, before the last failure %s", dl.DeadAt, dl.LastFailedAt)
	}
}

func TestDeadLettersBefore(t *testing.T) {
	b := openBackend(t, testDSN(t), fastConfig())
	backendtest.DeadLettersBefore(t, b.DeadLetters(), "dead-before")
}

func TestReplayStamped(t *testing.T) {
	b := openBackend(t, testDSN(t), fastConfig())
	backendtest.ReplayStamped(t, b, queue.ReplayDeadLetter, newTopic(t))
}
