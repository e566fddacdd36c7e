package main

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/postgres"
	"github.com/orderflow/orderflow/queue/postgres/pgtest"
	"github.com/orderflow/orderflow/queue/sqlite"
)

// openService opens the queue at url as a service does, collecting often.
func openService(t *testing.T, url string) backend.Backend {
	t.Helper()
	b, err := queue.OpenBackend(context.Background(), queue.Config{
		URL:      url,
		SQLite:   sqlite.Config{GCInterval: 10 * time.Millisecond},
		Postgres: postgres.Config{GCInterval: 50 * time.Millisecond, ResendInterval: 10 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// seedGroups makes, on the queue at url, topic "orders" with two groups:
// "shipping", which acked both messages published, and "billing", whose
// service stopped before it took any, with one dead letter; and "payments",
// to which billing subscribed too. It returns the backend, still open,
// whose collections run every few milliseconds, as a service's would.
func seedGroups(t *testing.T, url string) backend.Backend {
	t.Helper()
	ctx := context.Background()
	b := openService(t, url)
	billing, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "billing"})
	if err != nil {
		t.Fatal(err)
	}
	billingCtx, stopBilling := context.WithCancel(ctx)
	for _, topic := range []string{"orders", "payments"} {
		if _, err := billing.Subscribe(billingCtx, topic); err != nil {
			t.Fatal(err)
		}
	}
	stopBilling()
	if err := billing.Close(); err != nil {
		t.Fatal(err)
	}
	shipping, err := b.Subscriber(backend.SubscriberConfig{ConsumerGroup: "shipping"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shipping.Close() })
	shippingCtx, stopShipping := context.WithCancel(ctx)
	t.Cleanup(stopShipping)
	msgs, err := shipping.Subscribe(shippingCtx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher().Publish("orders", message.NewMessage("o-1", []byte(`{}`)), message.NewMessage("o-2", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher().Publish("payments", message.NewMessage("p-1", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case m := <-msgs:
			m.Ack()
		case <-time.After(30 * time.Second):
			t.Fatal("shipping got no message within 30s")
		}
	}
	waitFor(t, "shipping to have acked orders", func() bool {
		g, ok := groupStats(t, b, "orders", "shipping")
		return ok && g.Depth == 0 && g.InFlight == 0
	})
	now := time.Now()
	if err := b.DeadLetters().Put(ctx, backend.DeadLetter{MessageUUID: "d-1", Topic: "orders", ConsumerGroup: "billing",
		Payload: []byte(`{}`), Metadata: map[string]string{}, Attempts: 3, LastError: "boom", FirstFailedAt: now, LastFailedAt: now}); err != nil {
		t.Fatal(err)
	}
	return b
}

func topicOf(t *testing.T, b backend.Backend, topic string) backend.TopicStats {
	t.Helper()
	stats, err := b.Inspector().Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stats {
		if s.Topic == topic {
			return s
		}
	}
	t.Fatalf("stats: no topic %s", topic)
	return backend.TopicStats{}
}

func groupStats(t *testing.T, b backend.Backend, topic, group string) (backend.GroupStats, bool) {
	t.Helper()
	for _, g := range topicOf(t, b, topic).Groups {
		if g.ConsumerGroup == group {
			return g, true
		}
	}
	return backend.GroupStats{}, false
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testGroupDrop drives queuectl group drop on the queue at url, seeded by
// seedGroups: it refuses without --yes, drops billing from orders (and
// from nothing else), after which the services' collection deletes the
// messages only billing held, keeps billing's dead letter, and names the
// topic and the group of a drop that finds nothing.
func testGroupDrop(t *testing.T, url string) {
	b := seedGroups(t, url)
	if g, ok := groupStats(t, b, "orders", "billing"); !ok || g.Depth != 2 {
		t.Fatalf("billing on orders before the drop: got %+v (listed %v), want depth 2", g, ok)
	}
	// Held back by billing, the acked messages stay.
	time.Sleep(200 * time.Millisecond)
	if s := topicOf(t, b, "orders"); s.Stored != 2 {
		t.Fatalf("orders before the drop: %d stored, want 2", s.Stored)
	}

	_, _, err := runCLI(t, "--queue-url", url, "group", "drop", "orders", "billing")
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("group drop without --yes: got %v, want a usage error asking for --yes", err)
	}
	if _, ok := groupStats(t, b, "orders", "billing"); !ok {
		t.Fatal("group drop without --yes dropped the group")
	}

	out, errOut, err := runCLI(t, "--queue-url", url, "group", "drop", "orders", "billing", "--yes", "--json")
	if err != nil {
		t.Fatalf("group drop --yes --json: %v (stderr %q)", err, errOut)
	}
	var dropped backend.DroppedGroup
	if err := json.Unmarshal([]byte(out), &dropped); err != nil {
		t.Fatalf("group drop --json printed %q: %v", out, err)
	}
	want := backend.DroppedGroup{Topic: "orders", ConsumerGroup: "billing", Pending: 2, DeadLetters: 1}
	if dropped != want {
		t.Errorf("group drop --json: got %+v, want %+v", dropped, want)
	}

	out, _, err = runCLI(t, "--queue-url", url, "--json", "stats")
	if err != nil {
		t.Fatal(err)
	}
	var stats []backend.TopicStats
	if err := json.Unmarshal([]byte(out), &stats); err != nil {
		t.Fatal(err)
	}
	groups := map[string][]string{}
	for _, s := range stats {
		for _, g := range s.Groups {
			groups[s.Topic] = append(groups[s.Topic], g.ConsumerGroup)
		}
	}
	if got := strings.Join(groups["orders"], ","); got != "shipping" {
		t.Errorf("groups of orders after the drop: got %s, want shipping", got)
	}
	if got := strings.Join(groups["payments"], ","); got != "billing" {
		t.Errorf("groups of payments after the drop: got %s, want billing (untouched)", got)
	}
	// The service's collection deletes what only billing held; payments
	// keeps its message for billing; the dead letter stays.
	waitFor(t, "the collection of orders", func() bool { return topicOf(t, b, "orders").Stored == 0 })
	if s := topicOf(t, b, "payments"); s.Stored != 1 {
		t.Errorf("payments after the drop: %d stored, want 1", s.Stored)
	}
	out, _, err = runCLI(t, "--queue-url", url, "dlq", "list", "--group", "billing")
	if err != nil || !strings.Contains(out, "boom") {
		t.Errorf("dlq list --group billing after the drop: got %q (%v), want the dead letter kept", out, err)
	}

	// Nothing to drop: exit status 1, the topic and the group named, with
	// what the queue knows.
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"group", "drop", "orders", "billing", "--yes"}, []string{`"billing"`, `"orders"`, "no such consumer group", "groups of orders: shipping"}},
		{[]string{"group", "drop", "orders", "nosuch", "--yes"}, []string{`"nosuch"`, `"orders"`, "no such consumer group", "groups of orders: shipping"}},
		{[]string{"group", "drop", "nosuch.topic", "billing", "--yes"}, []string{`"billing"`, `"nosuch.topic"`, "no such topic", "known topics: orders, payments"}},
	} {
		_, errOut, status := runMain(t, append([]string{"--queue-url", url}, tt.args...)...)
		if status != 1 {
			t.Errorf("queuectl %s: exit status %d, want 1", strings.Join(tt.args, " "), status)
		}
		for _, w := range tt.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("queuectl %s: stderr %q, want it to contain %q", strings.Join(tt.args, " "), errOut, w)
			}
		}
	}

	// The table output, on payments.
	out, _, err = runCLI(t, "--queue-url", url, "group", "drop", "--yes", "payments", "billing")
	if err != nil || out != "dropped consumer group \"billing\" of topic \"payments\": 1 message it had not acked no longer kept for it\n" {
		t.Errorf("group drop payments billing: got %q (%v)", out, err)
	}
}

func TestGroupDropOnSQLite(t *testing.T) {
	testGroupDrop(t, "sqlite://"+filepath.Join(t.TempDir(), "q.db"))
}

func TestGroupDropOnPostgreSQL(t *testing.T) {
	testGroupDrop(t, pgtest.SchemaURL(t, "queuectl_test"))
}

// Mistakes in the command line are usage errors (exit status 2), found
// before the queue is opened.
func TestGroupDropUsageErrors(t *testing.T) {
	url := seed(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"group"}, "group needs a subcommand: drop"},
		{[]string{"group", "frobnicate"}, `unknown group subcommand "frobnicate"`},
		{[]string{"group", "drop", "--yes"}, "needs a TOPIC and a GROUP"},
		{[]string{"group", "drop", "orders", "--yes"}, "needs a TOPIC and a GROUP"},
		{[]string{"group", "drop", "orders", "billing", "extra", "--yes"}, "needs a TOPIC and a GROUP"},
		{[]string{"group", "drop", "a b", "billing", "--yes"}, "not allowed"},
		{[]string{"group", "drop", "orders", "", "--yes"}, "consumer group name is empty"},
		{[]string{"group", "drop", "orders", "billing"}, "--yes"},
	} {
		_, errOut, status := runMain(t, append([]string{"--queue-url", url}, tt.args...)...)
		if status != 2 || !strings.Contains(errOut, tt.want) {
			t.Errorf("queuectl %s: exit status %d, stderr %q; want 2 and %q", strings.Join(tt.args, " "), status, errOut, tt.want)
		}
	}
	// Still there: nothing was dropped.
	out, _, err := runCLI(t, "--queue-url", url, "stats")
	if err != nil || !strings.Contains(out, "billing") {
		t.Errorf("stats after the refused drops: got %q (%v), want billing still listed", out, err)
	}
	out, _, err = runCLI(t, "group", "drop", "--help")
	if err != nil || !strings.Contains(out, "-yes") {
		t.Errorf("group drop --help: got %q (%v), want its flags", out, err)
	}
}
