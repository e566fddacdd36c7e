package sologate_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/orderflow/orderflow/queue/internal/sologate"
)

// acquire runs acquisition on a goroutine and returns the channel that
// receives its release once it succeeds.
func acquire(t *testing.T, acquisition func(context.Context) (func(), error), ctx context.Context) <-chan func() {
	t.Helper()
	got := make(chan func(), 1)
	go func() {
		release, err := acquisition(ctx)
		if err != nil {
			return
		}
		got <- release
	}()
	return got
}

// waitForQueued waits until an acquisition waits in g (Busy), which for a
// gate with only shares held means that Alone waits.
func waitForQueued(g *sologate.Gate) {
	for !g.Busy() {
		runtime.Gosched()
	}
}

// stillWaiting checks that the acquisition behind got has not succeeded:
// given a moment, it would have if it could.
func stillWaiting(t *testing.T, got <-chan func(), what string) {
	t.Helper()
	select {
	case <-got:
		t.Fatalf("%s: acquired, want it still waiting", what)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestAloneWaitsForEveryShareAndKeepsNewSharesOut(t *testing.T) {
	g := sologate.New(0)
	ctx := context.Background()
	releaseFirst, err := g.Share(ctx)
	if err != nil {
		t.Fatal(err)
	}
	releaseSecond, err := g.Share(ctx)
	if err != nil {
		t.Fatal(err)
	}

	alone := acquire(t, g.Alone, ctx)
	waitForQueued(g)
	late := acquire(t, g.Share, ctx) // queued behind Alone

	releaseFirst()
	stillWaiting(t, alone, "Alone with one share still held")
	stillWaiting(t, late, "a share asked for after Alone, before Alone ran")
	releaseSecond()
	releaseAlone := <-alone
	stillWaiting(t, late, "a share while a handler runs alone")
	releaseAlone()
	releaseLate := <-late
	releaseLate()
	releaseLate() // releasing twice is harmless

	if g.Busy() {
		t.Fatal("Busy: got true on a gate nobody holds, want false")
	}
}

// An Alone given up while it waits (its subscriber stops, its deadline
// passes) lets the shares queued behind it through.
func TestAnAloneGivenUpLetsTheSharesBehindItThrough(t *testing.T) {
	g := sologate.New(0)
	release, err := g.Share(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	alone := make(chan error, 1)
	go func() {
		_, err := g.Alone(ctx)
		alone <- err
	}()
	waitForQueued(g)
	late := acquire(t, g.Share, context.Background())
	stillWaiting(t, late, "a share behind a waiting Alone")

	cancel()
	if err := <-alone; !errors.Is(err, context.Canceled) {
		t.Errorf("Alone given up: got %v, want the context's error", err)
	}
	(<-late)()
}

func TestAcquisitionsEndWithTheirContext(t *testing.T) {
	g := sologate.New(0)
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

// AloneOrShared gets the whole gate when the handlers running finish in
// time, and a share once they have run for the alone wait: a hung handler
// does not hold up the process.
func TestAloneOrSharedFallsBackToAShareAfterTheAloneWait(t *testing.T) {
	g := sologate.New(50 * time.Millisecond)
	ctx := context.Background()

	release, alone, err := g.AloneOrShared(ctx)
	if err != nil || !alone {
		t.Fatalf("AloneOrShared on an idle gate: got alone %v, %v; want alone", alone, err)
	}
	release()

	hung, err := g.Share(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hung()
	release, alone, err = g.AloneOrShared(ctx)
	if err != nil || alone {
		t.Fatalf("AloneOrShared beside a handler that does not finish: got alone %v, %v; want a share", alone, err)
	}
	defer release()
	// The waiting Alone was given up: shares go through again.
	other, err := g.Share(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other()
}
