//go:build unix

package sqlite

import (
	"fmt"
	"os"
	"syscall"
)

// checkFileNames refuses a queue file with several names (hard links).
// SQLite on Unix follows symbolic links, so a link to the file is fine.
func checkFileNames(_ string, st os.FileInfo) error {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if n := uint64(sys.Nlink); n > 1 {
		return fmt.Errorf(manyNames, n)
	}
	return nil
}

// chownLike gives f the owner of like when this process runs as root (a
// file root creates for services of another user must be theirs), as
// SQLite does for the WAL.
func chownLike(f *os.File, like os.FileInfo) error {
	sys, ok := like.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 {
		return nil
	}
	return f.Chown(int(sys.Uid), int(sys.Gid))
}
