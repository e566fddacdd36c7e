package servicecmd

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// stopSignals are the signals that stop a service: SIGINT (Ctrl-C) and
// SIGTERM (devrun, Docker, systemd, Kubernetes).
func stopSignals() []os.Signal { return []os.Signal{os.Interrupt, syscall.SIGTERM} }

// ForcedExitCode is the exit status of a stop forced by a second signal
// for signal sig: 128 + its number, as a shell reports a process ended by
// it (130 for SIGINT, 143 for SIGTERM).
func ForcedExitCode(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 1
}

// NotifyContext returns a context that ends at the first SIGINT or SIGTERM,
// which begins the service's graceful stop (bounded by its
// SHUTDOWN_TIMEOUT). A second one forces the stop: it writes a line saying
// so to stderr, prefixed with name, and exits at once with
// ForcedExitCode, without waiting for what the graceful stop still waits
// for. That loses nothing committed (every commit is durable when it
// returns, as for a kill -9): messages being handled and not yet
// acknowledged are delivered again after the restart, and what the outbox
// holds is forwarded then. Call stop, as main returns, to let the signals
// have their default effect again.
func NotifyContext(parent context.Context, name string, stderr io.Writer) (ctx context.Context, stop context.CancelFunc) {
	return notifyContext(parent, name, stderr, os.Exit)
}

func notifyContext(parent context.Context, name string, stderr io.Writer, exit func(int)) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, stopSignals()...)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-sigs:
			cancel()
		case <-done:
			return
		}
		select {
		case sig := <-sigs:
			code := ForcedExitCode(sig)
			fmt.Fprintf(stderr, "%s: second signal (%s): stop forced, exiting now with status %d without waiting for the graceful stop; "+
				"nothing committed is lost: messages being handled and not yet acknowledged are delivered again after the restart, and the outbox forwards what it holds then\n",
				name, sig, code)
			exit(code)
		case <-done:
		}
	})
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(sigs)
			close(done)
			wg.Wait()
			cancel()
		})
	}
}
