package sqlite

import (
	"errors"
	"fmt"
	"os"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/orderflow/orderflow/queue/retry"
)

// checkFile compares the file at the queue's path with the one opened
// (b.opened): a file moved over it (cp queue.db backup && mv backup
// queue.db) or removed leaves this process on the old inode, where
// nothing it writes reaches a process started since. It logs an error
// once when that happens (and once when the path names the file again)
// and makes WriteHealth fail meanwhile.
func (b *Backend) checkFile() {
	st, err := os.Stat(b.file)
	var problem error
	switch {
	case errors.Is(err, os.ErrNotExist):
		problem = fmt.Errorf("sqlite queue %s: the file this process opened was removed or renamed: it still reads and writes it, but processes started now will not see it (nor the messages written to it); stop every process on the queue, restore the file, then start them again", b.file)
	case err != nil:
		return // cannot tell (a permission change, a failing disk): the writes say more
	case !os.SameFile(st, b.opened):
		problem = fmt.Errorf("sqlite queue %s: the path names another file than the one this process opened (replaced, e.g. by cp and mv): this process still reads and writes the old file, so messages written to it are lost to processes started now; stop every process on the queue, restore one file, then start them again", b.file)
	}
	was := b.replaced.Load() != nil
	switch {
	case problem != nil && !was:
		b.replaced.Store(&problem)
		b.logger.Error("Queue file replaced under a running process", problem, watermill.LogFields{"file": b.file})
	case problem == nil && was:
		b.replaced.Store(nil)
		retry.Warn(b.logger, "Queue file path names the opened file again", nil, watermill.LogFields{"file": b.file})
	}
}
