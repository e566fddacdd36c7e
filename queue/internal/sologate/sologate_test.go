package sologate_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/orderflow/orderflow/queue/internal/sologate"
)

// acquired reports whether the acquisition in ch completed.
func acquired(ch <-chan func()) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestAloneWaitsForEveryShareAndKeepsNewSharesOut(t *testing.T) {
	g := sologate.New()
	ctx := context.Background()
	releaseFirst, err := g.Share(ctx)
	if err != nil {
		t.Fatal(err)
	}
	releaseSecond, err := g.Share(ctx)
	if err != nil {
		t.Fatal(err)
	}

	alone := make(chan func(), 1)
	go func() {
		release, err := g.Alone(ctx)
		if err != nil {
			t.Error(err)
		}
		alone <- release
	}()
	// A share asked for after Alone waits behind it (waiters are served
	// in order); once it is queued, Alone is queued before it.
	shareQueued := make(chan struct{})
	late := make(chan func(), 1)
	go func() {
		for !g.Busy() { // until Alone waits
			runtime.Gosched()
		}
		close(shareQueued)
		release, err := g.Share(ctx)
		if err != nil {
			t.Error(err)
		}
		late <- release
	}()
	<-shareQueued

	releaseFirst()
	if acquired(alone) {
		t.Fatal("Alone: got the gate while a share was still held, want it to wait for every share")
	}
	releaseSecond()
	releaseAlone := <-alone
	if acquired(late) {
		t.Fatal("Share: got a share while a handler ran alone, want it to wait")
	}
	releaseAlone()
	releaseLate := <-late
	releaseLate()
	releaseLate() // releasing twice is harmless

	if g.Busy() {
		t.Fatal("Busy: got true on a gate nobody holds, want false")
	}
}

func TestAcquisitionsEndWithTheirContext(t *testing.T) {
	g := sologate.New()
	release, err := g.Alone(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := g.Share(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Share while a handler runs alone: got %v, want the context's error", err)
	}
	if _, err := g.Alone(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Alone while a handler runs alone: got %v, want the context's error", err)
	}
}
