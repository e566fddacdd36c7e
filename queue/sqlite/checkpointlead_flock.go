//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package sqlite

import (
	"errors"
	"os"
	"syscall"
)

// tryLeadCheckpoints tries, without waiting, to take the lock that makes
// this process the queue file's checkpointer: an exclusive flock on
// lockPath (created if missing). The lock is the kernel's, so it goes with
// the process when the process dies, and another one takes over at its
// next try. It returns release when it got the lock and nil when another
// process holds it.
func tryLeadCheckpoints(lockPath string) (release func(), err error) {
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, err
	}
	// Closing the file releases the lock. The file stays: removing it
	// could let two processes hold locks on two files of the same name.
	return func() { _ = f.Close() }, nil
}
