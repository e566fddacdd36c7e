//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly || windows)

package sqlite

import (
	"errors"
	"os"
)

// fileLocking says that this platform has no exclusive file locks that
// go with the process here: every process checkpoints, and write
// transactions wait for SQLite's lock alone.
const fileLocking = false

func lockNoWait(*os.File) (bool, error) { return false, errors.ErrUnsupported }
func lockWait(*os.File) error           { return errors.ErrUnsupported }
func unlockFile(*os.File) error         { return errors.ErrUnsupported }
