package main

import (
	"testing"
	"time"
)

// devrun tells once, when the last process has logged its start line,
// that every process is up and where each serves.
func TestUpWatchTellsOnceWhenEveryProcessIsUp(t *testing.T) {
	began := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	u := newUpWatch([]string{"order", "payment", "console"}, began)
	lines := []struct {
		name, line string
		wantTold   bool
	}{
		{"payment", `{"time":"…","level":"INFO","msg":"admin API listening","addr":"http://127.0.0.1:8082"}`, false},
		{"payment", `{"time":"…","level":"INFO","msg":"service started","service":"payment","admin":"http://127.0.0.1:8082"}`, false},
		{"console", `not JSON: console listening`, false},
		{"order", `{"level":"INFO","msg":"order service started","http":"http://127.0.0.1:8080","admin":"http://127.0.0.1:8084"}`, false},
		{"console", `time=2026-11-27T15:35:53.935Z level=INFO msg="console listening" url=http://127.0.0.1:8090 allowed_hosts=localhost order_url=http://127.0.0.1:8080`, true},
		{"payment", `{"level":"INFO","msg":"service started","admin":"http://127.0.0.1:8082"}`, false}, // a restart: told already
	}
	var told []string
	for i, l := range lines {
		got := u.line(l.name, []byte(l.line), began.Add(time.Duration(i+1)*100*time.Millisecond))
		if (got != "") != l.wantTold {
			t.Fatalf("line %d (%s): got announcement %q, want one: %v", i, l.name, got, l.wantTold)
		}
		if got != "" {
			told = append(told, got)
		}
	}
	want := "devrun: all 3 processes up after 500ms: order http://127.0.0.1:8080 (admin http://127.0.0.1:8084), " +
		"payment http://127.0.0.1:8082, console http://127.0.0.1:8090. Ctrl-C stops them all."
	if len(told) != 1 || told[0] != want {
		t.Errorf("announcements: got %q, want [%q]", told, want)
	}
}

func TestUpWatchNotesATakenPort(t *testing.T) {
	u := newUpWatch([]string{"payment"}, time.Now())
	u.line("payment", []byte(`payment: admin: listen: listen tcp 127.0.0.1:8082: bind: address already in use`), time.Now())
	if !u.tookPort("payment") || u.tookPort("order") {
		t.Errorf("port taken: got payment %v, order %v; want true, false", u.tookPort("payment"), u.tookPort("order"))
	}
	u.started("payment") // a restart: what the last run said no longer counts
	if u.tookPort("payment") {
		t.Error("port taken after a restart: got true, want false")
	}
}
