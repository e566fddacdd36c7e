package readiness_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/orderflow/orderflow/pkg/readiness"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Ready answers with the function's answer, or within the timeout when
// the function does not heed its context.
func TestReadyAnswersWithinTheTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	tests := []struct {
		name    string
		fn      func(context.Context) error
		wantErr bool
		says    string // part of the error's text, when known
	}{
		{"ready", func(context.Context) error { return nil }, false, ""},
		{"not ready", func(context.Context) error { return errors.New("router not running") }, true, "router not running"},
		// Either deadline may come first: the call's or the probe's.
		{"heeding its context", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, true, ""},
		{"ignoring its context", func(context.Context) error { <-release; return nil }, true, "did not answer within 50ms"},
	}
	for _, tc := range tests {
		c := readiness.New(tc.fn, 50*time.Millisecond)
		start := time.Now()
		err := c.Ready(context.Background())
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s: took %v, want about the 50ms timeout at most", tc.name, took)
		}
		switch {
		case !tc.wantErr && err != nil:
			t.Errorf("%s: got %v, want nil", tc.name, err)
		case tc.wantErr && (err == nil || !strings.Contains(err.Error(), tc.says)):
			t.Errorf("%s: got %v, want an error saying %q", tc.name, err, tc.says)
		}
	}
}

// Concurrent probes share the call in flight; once it ends, the next
// probe calls the function again.
func TestProbesShareTheCallInFlight(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	c := readiness.New(func(context.Context) error {
		if calls.Add(1) == 1 {
			<-release // the first call hangs until released
		}
		return nil
	}, 20*time.Millisecond)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if err := c.Ready(context.Background()); err == nil {
				t.Error("Ready while the call hangs: got nil, want an error")
			}
		})
	}
	wg.Wait()
	if got := calls.Load(); got != 1 {
		t.Errorf("calls by 10 probes while one hung: got %d, want 1", got)
	}
	close(release)
	// The released call answers the probes waiting for it; a probe after
	// it has ended calls the function again.
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("probes after the hung call ended: the function not called again within 5s")
		}
		if err := c.Ready(context.Background()); err != nil {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if err := c.Ready(context.Background()); err != nil {
		t.Errorf("Ready once the function answers promptly: got %v, want nil", err)
	}
}
