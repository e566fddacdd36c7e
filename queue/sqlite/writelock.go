package sqlite

import (
	"os"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/orderflow/orderflow/queue/retry"
)

// writeLockSuffix names, beside the queue file, the file whose lock the
// processes' write transactions take turns on.
const writeLockSuffix = "-writer"

// writeLock lets the processes that write to one queue file wait for each
// other in the kernel rather than by retrying. SQLite offers no way to
// wait for its write lock but to try again: its busy handler sleeps 1, 2,
// 5 … ms, the writer's own retries (see lock) pause 100 µs to 1 ms, and a
// Go timer that short fires after about a millisecond in a process with
// nothing else to do. A transaction that found the lock taken so waited
// around a millisecond for a lock that is held for about a hundred
// microseconds: that wait was most of the publish→handler p50 and p99.
// Each writer now takes an exclusive lock on a file beside the queue
// before BEGIN IMMEDIATE and releases it after COMMIT; a writer that finds
// it taken sleeps until the holder lets go and is woken at once.
//
// SQLite's lock still decides who writes: the file lock only orders who
// asks for it, so a writer that does not take it (a truncating checkpoint,
// which may wait for readers for seconds and must not hold up the other
// processes meanwhile; a process of an older version) is waited for by
// retrying, as before. The lock is the kernel's: it goes with a process
// that dies. Where there are no file locks, or the file cannot be opened,
// transactions go without it.
//
// The writer goroutine owns its writeLock; it is not safe for concurrent
// use.
type writeLock struct {
	path      string
	queuePath string   // the queue file, whose permissions a new lock file takes
	f         *os.File // nil: transactions go without the lock file
	logger    watermill.LoggerAdapter
	// retryOpen is when to try opening the file again after opening it
	// failed (zero: it did not fail, or file locks are not used here);
	// openFailed says the failure was logged.
	retryOpen  time.Time
	openFailed bool
	// waiting is set when acquire gives up on a wait, which may still be
	// blocked in the kernel (with the file, which it owns); it is closed
	// when that wait has ended and let go of the file, and cleared by the
	// next acquire.
	waiting chan struct{}
}

// openWriteLock opens (creating it if needed) the lock file at path
// beside the queue file at queuePath (see openLockFile).
func openWriteLock(path, queuePath string, logger watermill.LoggerAdapter) *writeLock {
	l := &writeLock{path: path, queuePath: queuePath, logger: logger}
	if fileLocking {
		l.reopen()
	}
	return l
}

// reopenEvery is how often a writer that could not open the lock file
// tries again (running out of file descriptors passes; a directory it may
// not write to does not, and costs one failed open a second).
const reopenEvery = time.Second

func (l *writeLock) reopen() {
	f, err := openLockFile(l.path, l.queuePath)
	if err != nil {
		if !l.openFailed {
			retry.Warn(l.logger, "Write transactions go without the lock file: they wait for other processes by retrying", err, watermill.LogFields{"lock_file": l.path})
			l.openFailed = true
		}
		l.retryOpen = time.Now().Add(reopenEvery)
		return
	}
	if l.openFailed {
		retry.Warn(l.logger, "Write transactions take turns on the lock file again", nil, watermill.LogFields{"lock_file": l.path})
	}
	l.f, l.retryOpen, l.openFailed = f, time.Time{}, false
}

// acquire takes the lock, waiting until deadline at most, or until abort
// is closed (nil: never; once closed, it does not wait at all), and reports
// whether it got it (then release must follow). When the lock cannot be
// had — no lock file, an error, the deadline passed, or an earlier wait
// given up on is still blocked — the transaction goes ahead on SQLite's
// lock alone and waits for it by retrying, as writers did before the lock
// file (once only, when the deadline has passed).
//
// The wait runs in a goroutine of its own, so that it can end at deadline:
// a process that was stopped (SIGSTOP, a debugger) while it held the lock
// must not stop this process's writer, and with it Close, for good. The
// goroutine of a wait given up on keeps the file; it lets go of both as
// soon as the other process releases the lock or exits (it may outlive
// Close until then). Meanwhile transactions go without the lock file
// rather than each leaving a wait behind; after it, the writer opens the
// file again.
func (l *writeLock) acquire(deadline time.Time, abort <-chan struct{}) bool {
	if l.waiting != nil {
		select {
		case <-l.waiting:
			l.waiting = nil
			l.reopen()
		default:
			return false
		}
	}
	if l.f == nil && !l.retryOpen.IsZero() && time.Now().After(l.retryOpen) {
		l.reopen()
	}
	if l.f == nil {
		return false
	}
	held, err := lockNoWait(l.f)
	if err != nil {
		l.fail("lock", err)
		return false
	}
	if held {
		return true
	}
	if aborted(abort) {
		return false
	}
	f := l.f
	got := make(chan error) // unbuffered: handed over only while acquire waits
	abandoned := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		err := lockWait(f)
		select {
		case got <- err:
		case <-abandoned:
			if err == nil {
				_ = unlockFile(f) // before Close: Windows releases a closed handle's locks late
			}
			_ = f.Close()
			close(ended)
		}
	}()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case err := <-got:
		if err != nil {
			l.fail("wait for", err)
			return false
		}
		return true
	case <-timer.C:
	case <-abort:
	}
	close(abandoned)
	l.f, l.waiting = nil, ended
	return false
}

// release lets the next process have the lock after a successful acquire.
func (l *writeLock) release() {
	if err := unlockFile(l.f); err != nil {
		l.fail("release", err)
	}
}

// fail gives up on the lock file after an error of the lock call: the
// file is closed (which releases any lock on it) and transactions go
// without it from now on.
func (l *writeLock) fail(what string, err error) {
	l.logger.Error("Cannot "+what+" the queue's lock file; write transactions go without it", err, watermill.LogFields{"lock_file": l.path})
	_ = l.f.Close()
	l.f = nil
}

// close releases the file (and any lock on it).
func (l *writeLock) close() {
	if l.f != nil {
		_ = l.f.Close()
		l.f = nil
	}
}
