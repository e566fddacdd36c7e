package sqlite

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// errorLog counts the error records logged.
type errorLog struct {
	watermill.LoggerAdapter
	mu     sync.Mutex
	errors []string
}

func (l *errorLog) Error(msg string, err error, _ watermill.LogFields) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errors = append(l.errors, msg+": "+err.Error())
}

func (l *errorLog) With(watermill.LogFields) watermill.LoggerAdapter { return l }

func (l *errorLog) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.errors {
		if strings.Contains(e, substr) {
			n++
		}
	}
	return n
}

// A queue file replaced (cp && mv) or moved away under a running process
// is noticed: one error logged, naming the file, and WriteHealth fails
// until the path names the opened file again.
func TestReplacedQueueFileIsNoticed(t *testing.T) {
	copyOver := func(t *testing.T, path string) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+".new", data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".new", path); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		change  func(t *testing.T, path string)
		restore func(t *testing.T, path string) // nil: cannot be undone
	}{
		{"replaced by rename", copyOver, nil},
		{"moved away", func(t *testing.T, path string) {
			if err := os.Rename(path, path+".moved"); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, path string) {
			if err := os.Rename(path+".moved", path); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "queue.db")
			log := &errorLog{LoggerAdapter: watermill.NopLogger{}}
			b, err := Open(t.Context(), path, Config{CheckpointInterval: 10 * time.Millisecond, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if err := b.Publisher().Publish("jobs", message.NewMessage("m-1", []byte("x"))); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
			if err := b.WriteHealth(); err != nil {
				t.Fatalf("before: got %v, want nil", err)
			}
			tc.change(t, path)
			waitFor(t, func() bool { return b.WriteHealth() != nil }, "WriteHealth to fail")
			if err := b.WriteHealth(); !strings.Contains(err.Error(), FileOf(b)) {
				t.Errorf("WriteHealth: got %v, want it to name %s", err, FileOf(b))
			}
			time.Sleep(100 * time.Millisecond) // ten more checks
			if got := log.count(FileOf(b)); got != 1 {
				t.Errorf("errors logged naming the file: got %d, want 1 (%v)", got, log.errors)
			}
			if tc.restore == nil {
				return
			}
			tc.restore(t, path)
			waitFor(t, func() bool { return b.WriteHealth() == nil }, "WriteHealth to pass again")
		})
	}
}
