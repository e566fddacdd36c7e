// Package handlerpool runs message handlers on long-lived goroutines, so
// that they keep the stacks they have grown.
//
// Watermill's router starts a goroutine for every message. A handler's
// call chain (middleware, JSON decoding, database/sql, cgo) needs a stack
// of tens of KiB, and a new goroutine starts with a few: every message
// paid for growing it two or three times, each time copying and adjusting
// every frame — 5 % of the services' CPU under load (docs/benchmarks.md).
// A Pool hands the call to one of its goroutines instead, whose stack has
// already grown, and waits for it: one goroutine switch each way.
//
// The garbage collector may shrink the stack of a goroutine that waits
// between messages (by half per cycle, when it uses a quarter of it), so a
// pooled goroutine regrows now and then: far less often than once a
// message.
package handlerpool

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// DefaultIdleTimeout is how long a goroutine of the pool waits for work
// before it ends.
const DefaultIdleTimeout = 10 * time.Second

// Pool runs functions on its goroutines. It starts one whenever none is
// waiting, so it has as many as were ever busy at once (the router's
// concurrency bounds that), less those idle for longer than the idle
// timeout. The goroutine that waited least is used first, so that the
// others can reach the timeout. A pooled goroutine keeps the pprof labels
// of the goroutine that started it. The zero Pool is not usable: use New.
type Pool struct {
	idleTimeout time.Duration

	mu     sync.Mutex
	idle   []*worker // waiting for a job; the last waited least
	closed bool
}

// New returns a Pool whose goroutines end after idleTimeout without work
// (DefaultIdleTimeout when zero). Close it when done.
func New(idleTimeout time.Duration) (*Pool, error) {
	if idleTimeout < 0 {
		return nil, errors.New("handler pool: idle timeout must not be negative")
	}
	if idleTimeout == 0 {
		idleTimeout = DefaultIdleTimeout
	}
	return &Pool{idleTimeout: idleTimeout}, nil
}

// worker is one goroutine of the pool; Run hands it a job through jobs
// (buffered, so the hand-over never waits), Close closes jobs to end it.
// exited is closed when the goroutine ends.
type worker struct {
	jobs   chan *job
	exited chan struct{}
}

type job struct {
	fn       func()
	done     chan struct{}
	panicked any
	stack    []byte
	goexit   bool
}

// Run calls fn on a goroutine of the pool and returns when fn returns. If
// fn panics, Run panics on the caller's goroutine with a *PanicError
// holding the value and the stack fn panicked on; if fn calls
// runtime.Goexit, Run calls it too. After Close, Run calls fn itself.
func (p *Pool) Run(fn func()) {
	j := &job{fn: fn, done: make(chan struct{})}
	p.mu.Lock()
	switch n := len(p.idle); {
	case p.closed:
		p.mu.Unlock()
		fn()
		return
	case n > 0:
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.jobs <- j
	default:
		p.mu.Unlock()
		go p.work(&worker{jobs: make(chan *job, 1), exited: make(chan struct{})}, j)
	}
	<-j.done
	switch {
	case j.goexit:
		runtime.Goexit()
	case j.panicked != nil:
		panic(&PanicError{Value: j.panicked, Stack: j.stack})
	}
}

func (p *Pool) work(w *worker, j *job) {
	defer close(w.exited)
	idle := time.NewTimer(p.idleTimeout)
	defer idle.Stop()
	for {
		// The worker is back on the idle list before its caller is
		// answered, so that a caller running one message after another
		// finds it there.
		again := run(j, func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.closed {
				return false
			}
			p.idle = append(p.idle, w)
			return true
		})
		if !again {
			return
		}
		idle.Reset(p.idleTimeout)
		var ok bool
		select {
		case j, ok = <-w.jobs:
			if !ok {
				return // closed by Close
			}
		case <-idle.C:
			if p.retire(w) {
				return
			}
			// Run took w off the list: its job is on the way.
			if j, ok = <-w.jobs; !ok {
				return
			}
		}
	}
}

// retire takes w off the idle list and reports whether it was there.
func (p *Pool) retire(w *worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.idle {
		if x == w {
			n := copy(p.idle[i:], p.idle[i+1:])
			p.idle[i+n] = nil
			p.idle = p.idle[:i+n]
			return true
		}
	}
	return false
}

// run calls j.fn and answers its caller. Unless fn called runtime.Goexit
// (which ends the goroutine), it calls requeue first, after fn, and
// returns what requeue reports: whether the worker is to wait for more.
func run(j *job, requeue func() bool) (again bool) {
	returned := false
	defer func() {
		if !returned {
			if v := recover(); v != nil {
				j.panicked, j.stack = v, debug.Stack()
				again = requeue()
			} else {
				j.goexit = true // runtime.Goexit (recover returns nil)
			}
		}
		close(j.done)
	}()
	j.fn()
	returned = true
	return requeue()
}

// Close ends the pool's idle goroutines and waits for them, which takes
// no time: they are only waiting. A goroutine running a call ends when the
// call returns, without Close waiting for it — the router has already
// waited for its handlers as long as it would, and cancelled them. Later
// Run calls run on the caller's goroutine.
func (p *Pool) Close() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.closed = true
	p.mu.Unlock()
	for _, w := range idle {
		close(w.jobs)
	}
	for _, w := range idle {
		<-w.exited
	}
}

// Middleware runs the rest of the handler chain on the pool. Put it first,
// so that everything after it runs on a pooled goroutine; a panic after it
// reaches the middleware before it as a *PanicError.
func (p *Pool) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) (msgs []*message.Message, err error) {
		p.Run(func() { msgs, err = h(msg) })
		return msgs, err
	}
}

// PanicError is what Run panics with when the function it ran panicked:
// the value and the stack of the pooled goroutine it panicked on (the
// caller's own stack says only that it waited).
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("%v\n\npanicked on a pooled goroutine:\n%s", e.Value, e.Stack)
}

// GoString is Error: Watermill's Recoverer prints a panic's value with
// %#v, which would show the stack as a byte slice.
func (e *PanicError) GoString() string { return e.Error() }

// Unwrap returns Value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
