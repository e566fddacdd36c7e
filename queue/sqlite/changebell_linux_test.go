//go:build linux

package sqlite_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/orderflow/orderflow/queue/sqlite"
)

// inotifyWatchesOn counts the inotify watches this process holds on the
// file at path, as the kernel lists them in /proc/self/fdinfo.
func inotifyWatchesOn(t *testing.T, path string) int {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	ino := fmt.Sprintf(" ino:%x ", st.Sys().(*syscall.Stat_t).Ino)
	fds, err := os.ReadDir("/proc/self/fdinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		info, err := os.ReadFile(filepath.Join("/proc/self/fdinfo", fd.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		for line := range strings.Lines(string(info)) {
			if strings.HasPrefix(line, "inotify wd:") && strings.Contains(line, ino) {
				n++
			}
		}
	}
	return n
}

// A process that only publishes (or only inspects the queue, as queuectl
// and the console do) does not watch the changes file: each watch costs
// every other process's ring one more event. Its first waiting subscriber
// starts the watch.
func TestOnlyAProcessWithAWaitingSubscriberWatchesTheChangesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	b, err := sqlite.Open(t.Context(), path, sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	changes := sqlite.FileOf(b) + "-changes"
	if err := b.Publisher().Publish("jobs", message.NewMessage("m-0", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // time for a watcher to start watching, if it would
	if got := inotifyWatchesOn(t, changes); got != 0 {
		t.Fatalf("watches on the changes file of a process that only published: got %d, want 0", got)
	}

	msgs := subscribeWorkers(t, b) // a group registered late gets m-0 too
	receive(t, msgs, "m-0").Ack()
	publishReceiveAck(t, b.Publisher(), msgs, "m-1")
	deadline := time.Now().Add(10 * time.Second)
	for inotifyWatchesOn(t, changes) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("watches on the changes file once a subscriber waits: got %d, want 1", inotifyWatchesOn(t, changes))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
