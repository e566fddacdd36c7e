package handlerpool

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// goid is the id of the calling goroutine, from its stack's first line.
func goid(t *testing.T) int {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	f := bytes.Fields(buf)
	if len(f) < 2 {
		t.Fatalf("unexpected stack header %q", buf)
	}
	id, err := strconv.Atoi(string(f[1]))
	if err != nil {
		t.Fatalf("unexpected stack header %q: %v", buf, err)
	}
	return id
}

func newPool(t *testing.T, idle time.Duration) *Pool {
	t.Helper()
	p, err := New(idle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestCallsOneAfterAnotherShareOneGoroutine(t *testing.T) {
	p := newPool(t, time.Minute)
	caller := goid(t)
	seen := map[int]int{}
	for range 100 {
		p.Run(func() { seen[goid(t)]++ })
	}
	if len(seen) != 1 {
		t.Fatalf("100 calls in a row ran on %d goroutines, want 1", len(seen))
	}
	if _, ok := seen[caller]; ok {
		t.Errorf("the calls ran on the caller's goroutine, want a pooled one")
	}
}

func TestConcurrentCallsRunAtOnce(t *testing.T) {
	runAtOnce(t, newPool(t, time.Minute), 5)
}

// runAtOnce makes n calls of p at once, each of which returns only once
// all n are running, and waits for them to return.
func runAtOnce(t *testing.T, p *Pool, n int) {
	t.Helper()
	var inside sync.WaitGroup
	inside.Add(n)
	all := make(chan struct{})
	var done sync.WaitGroup
	for range n {
		done.Go(func() {
			p.Run(func() {
				inside.Done()
				<-all
			})
		})
	}
	waitOrFail(t, &inside, fmt.Sprintf("%d calls to be running at once", n))
	close(all)
	done.Wait()
}

// waitOrFail waits for wg, failing the test after 10 s.
func waitOrFail(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	returnsWithin10s(t, wg.Wait, what)
}

// returnsWithin10s calls f and fails the test if f has not returned
// after 10 s (f's goroutine then stays behind, and goleak reports it).
func returnsWithin10s(t *testing.T, f func(), what string) {
	t.Helper()
	ok := make(chan struct{})
	go func() {
		f()
		close(ok)
	}()
	select {
	case <-ok:
	case <-time.After(10 * time.Second):
		t.Fatalf("waited 10s for %s", what)
	}
}

func TestAPanicReachesTheCallerWithItsStack(t *testing.T) {
	p := newPool(t, time.Minute)
	boom := errors.New("boom")
	var got any
	func() {
		defer func() { got = recover() }()
		p.Run(panicsWith(boom))
	}()
	pe, ok := got.(*PanicError)
	if !ok {
		t.Fatalf("got panic %#v, want a *PanicError", got)
	}
	if pe.Value != boom || !errors.Is(pe, boom) {
		t.Errorf("got value %v, want %v (also through errors.Is)", pe.Value, boom)
	}
	if !bytes.Contains(pe.Stack, []byte("panicsWith")) {
		t.Errorf("got stack\n%s\nwant the frame that panicked (panicsWith)", pe.Stack)
	}
	ran := false
	p.Run(func() { ran = true })
	if !ran {
		t.Error("after a panic: the next call did not run")
	}
}

func panicsWith(v any) func() { return func() { panic(v) } }

func TestGoexitEndsTheCallersGoroutine(t *testing.T) {
	p := newPool(t, time.Minute)
	var afterRun, deferred bool
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		defer func() { deferred = true }()
		p.Run(runtime.Goexit)
		afterRun = true
	}()
	<-ended
	if afterRun || !deferred {
		t.Errorf("got code after Run run %v, deferred calls run %v; want false, true", afterRun, deferred)
	}
	ran := false
	p.Run(func() { ran = true })
	if !ran {
		t.Error("after a Goexit: the next call did not run")
	}
}

func TestAnIdleGoroutineEnds(t *testing.T) {
	p := newPool(t, 10*time.Millisecond)
	var first, second int
	p.Run(func() { first = goid(t) })
	waitFor(t, func() bool { return idleWorkers(p) == 0 }, "the idle goroutine to end")
	p.Run(func() { second = goid(t) })
	if first == second {
		t.Errorf("a call after the idle goroutine ended ran on goroutine %d again, want a new one", first)
	}
}

// After a burst, calls one at a time keep one goroutine busy and let the
// others reach their idle timeout.
func TestThePoolShrinksAfterABurst(t *testing.T) {
	p := newPool(t, 50*time.Millisecond)
	const burst = 5
	runAtOnce(t, p, burst)
	if got := idleWorkers(p); got < 2 {
		// Some may have timed out already, on a slow machine; not all.
		t.Fatalf("after a burst of %d: got %d idle goroutines, want several", burst, got)
	}
	waitFor(t, func() bool {
		p.Run(func() {})
		time.Sleep(5 * time.Millisecond)
		return idleWorkers(p) == 1
	}, "calls one at a time to leave one idle goroutine")
}

// waitFor calls cond until it reports true, failing the test after 10 s.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("waited 10s for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func idleWorkers(p *Pool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// Close ends the idle goroutines at once and does not wait for a running
// call, whose goroutine ends when the call returns; calls after Close run
// on their caller's goroutine.
func TestCloseEndsIdleGoroutinesAndLeavesRunningCalls(t *testing.T) {
	p, err := New(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	running := make(chan struct{})
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		p.Run(func() {
			close(running)
			<-release
		})
	}()
	<-running
	p.Run(func() {}) // a second goroutine, idle from now on
	if got := idleWorkers(p); got != 1 {
		t.Fatalf("before Close: got %d idle goroutines, want 1", got)
	}
	returnsWithin10s(t, p.Close, "Close with a call running (want it to return at once)")
	if got := idleWorkers(p); got != 0 {
		t.Errorf("after Close: got %d idle goroutines, want 0", got)
	}
	caller := goid(t)
	var ranOn int
	p.Run(func() { ranOn = goid(t) })
	if ranOn != caller {
		t.Errorf("Run after Close ran on goroutine %d, want the caller's %d", ranOn, caller)
	}
	close(release)
	<-returned
	// goleak (TestMain) then checks that the running call's goroutine
	// ended once the call returned.
	waitFor(t, func() bool { return idleWorkers(p) == 0 }, "nothing idle")
}

// Run and Close racing, and the idle timeout racing Run taking the
// goroutine off the list: every call runs exactly once and none waits
// forever (go test -race checks the rest; goleak that all goroutines end).
func TestRacingCallsIdleTimeoutsAndClose(t *testing.T) {
	for range 20 {
		p, err := New(time.Microsecond) // idle timeouts race every Run
		if err != nil {
			t.Fatal(err)
		}
		const callers, calls = 8, 200
		var ran [callers][calls]int
		var wg sync.WaitGroup
		for c := range callers {
			wg.Go(func() {
				for i := range calls {
					p.Run(func() { ran[c][i]++ })
					if c == 0 && i == calls/2 {
						p.Close()
					}
				}
			})
		}
		waitOrFail(t, &wg, "the racing calls")
		for c := range callers {
			for i := range calls {
				if ran[c][i] != 1 {
					t.Fatalf("caller %d call %d ran %d times, want 1", c, i, ran[c][i])
				}
			}
		}
	}
}

// Watermill's Recoverer in front of the pool reports a panic of the middle
// ware behind it with its value and the stack it happened on.
func TestThePanicReportThroughWatermillsRecoverer(t *testing.T) {
	p := newPool(t, time.Minute)
	h := middleware.Recoverer(p.Middleware(func(*message.Message) ([]*message.Message, error) {
		panicsWith(errors.New("boom"))()
		return nil, nil
	}))
	_, err := h(message.NewMessage("m", nil))
	if err == nil {
		t.Fatal("got no error, want the recovered panic")
	}
	for _, want := range []string{"boom", "panicsWith"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got error %q, want it to contain %q", err, want)
		}
	}
}

func TestNewRejectsANegativeIdleTimeout(t *testing.T) {
	if _, err := New(-time.Second); err == nil {
		t.Error("New(-1s): got no error, want one")
	}
}

func TestMiddlewarePassesResultsThrough(t *testing.T) {
	p := newPool(t, time.Minute)
	want := errors.New("handler failed")
	out := []*message.Message{message.NewMessage("out", nil)}
	h := p.Middleware(func(msg *message.Message) ([]*message.Message, error) {
		if msg.UUID != "in" {
			t.Errorf("handler got message %q, want %q", msg.UUID, "in")
		}
		return out, want
	})
	msgs, err := h(message.NewMessage("in", nil))
	if len(msgs) != 1 || msgs[0] != out[0] || err != want {
		t.Errorf("got %v, %v; want %v, %v", msgs, err, out, want)
	}
}
