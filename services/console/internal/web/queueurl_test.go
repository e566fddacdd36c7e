package web

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// CheckQueueURL refuses what the queue module would never open, and
// accepts a good URL without reaching the queue: it creates no file and
// makes no connection.
func TestCheckQueueURL(t *testing.T) {
	dir := t.TempDir()
	notADB := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notADB, []byte("not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var dials atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dials.Add(1)
			c.Close()
		}
	}()
	missing := filepath.Join(dir, "queue.db")

	for _, tc := range []struct{ url, want string }{
		{"sqlite://" + missing, ""}, // created later by the services
		{"sqlite://" + missing + "?synchronous=FULL&lease=5s", ""},
		{"sqlite3://" + missing, ""},
		{"sqlite://" + notADB, ""}, // the file is not opened
		{"postgres://console:s3cret@" + ln.Addr().String() + "/queue?sslmode=disable", ""},
		{"postgresql://console@" + ln.Addr().String() + "/queue", ""},

		{"bogus://x", `queue URL "bogus://x": unsupported scheme "bogus" (want sqlite, postgres or memory)`},
		{"", "want sqlite://PATH, postgres://USER@HOST/DB or memory://"},
		{"data/queue.db", "want sqlite://PATH"},
		{"sqlite://", "want sqlite://PATH"},
		{"sqlite://" + missing + "?lease_time=3s", `unknown parameter "lease_time"`},
		{"sqlite://" + missing + "?synchronous=SOMETIMES", "synchronous must be"},
		{"postgres://console:s3cret@127.0.0.1:port/queue", "dsn is not a URL"},
		{"postgres://console:s3cret@127.0.0.1/queue?sslmode=sometimes", "sslmode is invalid"},
		{"bogus://console:s3cret@x", `queue URL "bogus://console:xxxxx@x": unsupported scheme "bogus"`},
		{"memory://", "a queue inside the console alone"},
	} {
		err := CheckQueueURL(tc.url)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckQueueURL(%q) = %v, want nil", tc.url, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("CheckQueueURL(%q) = %v, want an error containing %q", tc.url, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "s3cret"):
			t.Errorf("CheckQueueURL(%q) = %v: the password shows", tc.url, err)
		}
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("after the checks, %s: %v; want no file", missing, err)
	}
	if b, err := os.ReadFile(notADB); err != nil || string(b) != "not a database" {
		t.Errorf("after the checks, %s: %q %v; want it untouched", notADB, b, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("after the checks, %s holds %d files, want only notes.txt", dir, len(entries))
	}
	if n := dials.Load(); n != 0 {
		t.Errorf("the checks connected to the PostgreSQL address %d times, want 0", n)
	}
}
