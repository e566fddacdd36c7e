package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"

	"github.com/mattn/go-sqlite3"
)

// errFileReplaced is the error of a connection refused because the queue
// file was replaced or removed under the running process (checkFile).
var errFileReplaced = errors.New("the path names another file than the one this process opened (replaced or removed); not opening a connection to it")

// sameFileConnector opens connections of one DSN only while path still
// names opened, the file the backend opened: the reading pool opens
// connections as load grows, and one opened on a file moved over the
// queue's would share the -shm file that this process's other
// connections map with a database it does not belong to (SQLite may
// rebuild or truncate it under them: a SIGBUS, or a corrupt read), and
// one opened after the file was removed would create an empty queue.
// The process keeps working on the file it opened (checkFile reports the
// replacement) with the connections it has.
type sameFileConnector struct {
	dsn    string
	path   string
	opened os.FileInfo
	drv    *sqlite3.SQLiteDriver
}

func (c sameFileConnector) Connect(context.Context) (driver.Conn, error) {
	st, err := os.Stat(c.path)
	switch {
	case errors.Is(err, os.ErrNotExist) || err == nil && !os.SameFile(st, c.opened):
		return nil, fmt.Errorf("sqlite queue %s: %w", c.path, errFileReplaced)
	case err != nil:
		// Cannot tell (a permission change, a failing disk): SQLite's
		// own open says more.
	}
	return c.drv.Open(c.dsn)
}

func (c sameFileConnector) Driver() driver.Driver { return c.drv }
