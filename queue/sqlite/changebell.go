package sqlite

import (
	"errors"
	"io/fs"
	"os"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/orderflow/orderflow/queue/retry"
)

// changesSuffix names, beside the queue file, the file that each process's
// writer writes a byte to after a commit that made deliveries visible, and
// whose change events wake the other processes' waiting subscribers (see
// watchFileEvents).
//
// The processes used to watch the WAL itself, which every commit appends
// to. But the kernel raises an event for every write to a watched file, at
// the writer's expense and while it holds the queue's write lock: a commit
// writes each WAL frame with two writes, claims, acks and checkpoints write
// frames too, and each process watching the file adds an event to every
// one of those writes. With six processes on one file that was about a
// fifth of the queue's throughput (docs/queue-benchmarks.md). The bell
// costs one write per commit that made deliveries visible, and it comes
// after the commit, when the deliveries can be seen (a WAL write comes
// before SQLite publishes the commit, so a subscriber woken by it could
// look too early).
const changesSuffix = "-changes"

// openChangesFile opens the changes file for writing, creating it if it
// is missing. Every process that writes to the queue must be able to ring
// it, so a new file gets the queue file's permissions (not narrowed by the
// umask) and, where this process runs as root, its owner — as SQLite
// creates the WAL and its shared memory.
func openChangesFile(path string, like os.FileInfo) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, like.Mode().Perm())
	if errors.Is(err, fs.ErrExist) {
		return os.OpenFile(path, os.O_WRONLY, 0)
	}
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(like.Mode().Perm()); err != nil {
		_ = f.Close()
		return nil, err
	}
	if err := chownLike(f, like); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// changeBell is the writer's side of the changes file. The writer
// goroutine owns it; it is not safe for concurrent use. A bell that cannot
// be rung costs the other processes' subscribers latency, never a message:
// their watchers also read PRAGMA data_version every
// fileEventsSafetyNet (250ms).
type changeBell struct {
	path   string
	like   os.FileInfo // the queue file, whose permissions a new file gets
	f      *os.File    // nil: the file could not be opened
	logger watermill.LoggerAdapter
	// retryOpen is when to try opening the file again after opening it
	// failed; failed says the failure was logged.
	retryOpen time.Time
	failed    bool
	// checked is when ring last made sure that f is the file the name
	// holds (see ring).
	checked time.Time
}

// changesCheckEvery is how often a ringing bell makes sure it rings the
// file the name holds.
const changesCheckEvery = 100 * time.Millisecond

func openChangeBell(path string, like os.FileInfo, logger watermill.LoggerAdapter) *changeBell {
	c := &changeBell{path: path, like: like, logger: logger}
	c.reopen()
	return c
}

func (c *changeBell) reopen() {
	f, err := openChangesFile(c.path, c.like)
	if err != nil {
		c.fail("open", err)
		return
	}
	if c.failed {
		retry.Warn(c.logger, "Commits ring the changes file again", nil, watermill.LogFields{"changes_file": c.path})
	}
	c.f, c.retryOpen, c.failed = f, time.Time{}, false
}

func (c *changeBell) fail(what string, err error) {
	if !c.failed {
		retry.Warn(c.logger, "Cannot "+what+" the changes file: other processes learn of this process's commits only by their periodic check (every 250ms)", err, watermill.LogFields{
			"changes_file": c.path,
		})
		c.failed = true
	}
	if c.f != nil {
		_ = c.f.Close()
		c.f = nil
	}
	c.retryOpen = time.Now().Add(reopenEvery)
}

// ring writes one byte to the changes file, which raises a change event
// for every process watching it.
//
// Should someone remove the file (or replace it), the processes that
// start afterwards make and watch a new one, and a bell that went on
// ringing the old one would wake nobody of theirs: so at most every
// changesCheckEvery, ring makes sure its file is the one the name holds,
// and opens (or makes) that one if not. The watchers move over on the
// removal's event (watchFileEvents).
func (c *changeBell) ring() {
	now := time.Now()
	if c.f != nil && now.Sub(c.checked) >= changesCheckEvery {
		c.checked = now
		if !c.isNamed() {
			c.close() // opened again below, at once
		}
	}
	if c.f == nil {
		if now.Before(c.retryOpen) {
			return
		}
		c.reopen()
		if c.f == nil {
			return
		}
		c.checked = now
	}
	if _, err := c.f.WriteAt([]byte{1}, 0); err != nil {
		c.fail("write to", err)
	}
}

// isNamed reports whether c.f is the file c.path names.
func (c *changeBell) isNamed() bool {
	named, err := os.Stat(c.path)
	if err != nil {
		return false
	}
	open, err := c.f.Stat()
	return err == nil && os.SameFile(named, open)
}

func (c *changeBell) close() {
	if c.f != nil {
		_ = c.f.Close()
		c.f = nil
	}
}
