package handlerpool

import (
	"bytes"
	"errors"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
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
	t.Cleanup(func() { p.Close(0) })
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
	p := newPool(t, time.Minute)
	const n = 5
	var inside sync.WaitGroup
	inside.Add(n)
	all := make(chan struct{})
	var done sync.WaitGroup
	for range n {
		done.Go(func() {
			p.Run(func() {
				inside.Done()
				<-all // returns only once all n are inside
			})
		})
	}
	inside.Wait()
	close(all)
	done.Wait()
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
	time.Sleep(100 * time.Millisecond)
	p.Run(func() { second = goid(t) })
	if first == second {
		t.Errorf("a call after 100ms idle ran on goroutine %d again, want a new one (idle timeout 10ms)", first)
	}
}

// After a burst, calls one at a time keep one goroutine busy and let the
// others reach their idle timeout.
func TestThePoolShrinksAfterABurst(t *testing.T) {
	p := newPool(t, 50*time.Millisecond)
	const burst = 5
	var inside sync.WaitGroup
	inside.Add(burst)
	all := make(chan struct{})
	var done sync.WaitGroup
	for range burst {
		done.Go(func() {
			p.Run(func() {
				inside.Done()
				<-all
			})
		})
	}
	inside.Wait()
	close(all)
	done.Wait()
	if got := idleWorkers(p); got != burst {
		t.Fatalf("after a burst of %d: got %d idle goroutines, want %d", burst, got, burst)
	}
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
		p.Run(func() {})
		time.Sleep(5 * time.Millisecond)
	}
	if got := idleWorkers(p); got != 1 {
		t.Errorf("after 300ms of calls one at a time: got %d idle goroutines, want 1", got)
	}
}

func idleWorkers(p *Pool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

func TestCloseWaitsForTheRunningCallUpToItsTimeout(t *testing.T) {
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
	p.Run(func() {}) // a second, idle goroutine, ended at once by Close
	if p.Close(20 * time.Millisecond) {
		t.Error("Close with a call running: got true, want false after its timeout")
	}
	close(release)
	<-returned
	if !p.Close(0) {
		t.Error("Close once the call returned: got false, want true")
	}
	caller := goid(t)
	var ranOn int
	p.Run(func() { ranOn = goid(t) })
	if ranOn != caller {
		t.Errorf("Run after Close ran on goroutine %d, want the caller's %d", ranOn, caller)
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
