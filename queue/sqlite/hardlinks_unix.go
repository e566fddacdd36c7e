//go:build unix

package sqlite

import (
	"os"
	"syscall"
)

// hardLinks reports how many names (hard links) the file of fi has.
func hardLinks(fi os.FileInfo) (n uint64, known bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return uint64(st.Nlink), true
}
