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
