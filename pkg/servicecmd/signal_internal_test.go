package servicecmd

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// The first SIGTERM ends the context (the graceful stop begins); the
// second forces the exit, with 128 + the signal's number and a line saying
// what a forced stop means. (The signals go to this test process, whose
// NotifyContext catches them.)
func TestASecondSignalForcesTheExit(t *testing.T) {
	var out lockedBuffer
	exited := make(chan int, 1)
	ctx, stop := notifyContext(context.Background(), "payment", &out, func(code int) { exited <- code })
	defer stop()

	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("context not ended by SIGTERM")
	}
	select {
	case code := <-exited:
		t.Fatalf("exit(%d) after one signal; want the graceful stop", code)
	default:
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exited:
		if code != 143 {
			t.Errorf("exit status after a second SIGTERM: got %d, want 143", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after a second SIGTERM")
	}
	if got := out.String(); !strings.HasPrefix(got, "payment: second signal (terminated): stop forced") || !strings.Contains(got, "nothing committed is lost") {
		t.Errorf("line of the forced stop: got %q", got)
	}
}

// stop lets the goroutine go when no signal came.
func TestNotifyContextStopsWithoutASignal(t *testing.T) {
	ctx, stop := notifyContext(context.Background(), "payment", &lockedBuffer{}, func(int) { t.Error("exit called") })
	stop()
	stop() // twice is fine
	if ctx.Err() == nil {
		t.Error("context still live after stop")
	}
}
