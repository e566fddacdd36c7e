//go:build windows

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// checkFileNames refuses a queue file with several names (hard links) and
// a path that is a symbolic link: SQLite on Windows does not follow links,
// so a process that opened the link would keep a WAL of its own beside it.
func checkFileNames(path string, _ os.FileInfo) error {
	if st, err := os.Lstat(path); err == nil && st.Mode()&os.ModeSymlink != 0 {
		return errors.New("the path is a symbolic link, which SQLite on Windows does not follow: its WAL would not be the one other processes use; open the queue by the file's own path")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil // opening reports it
	}
	defer f.Close()
	var info syscall.ByHandleFileInformation
	if err := syscall.GetFileInformationByHandle(syscall.Handle(f.Fd()), &info); err != nil {
		return nil
	}
	if info.NumberOfLinks > 1 {
		return fmt.Errorf(manyNames, info.NumberOfLinks)
	}
	return nil
}

// chownLike does nothing on Windows: files have no Unix owner to match.
func chownLike(*os.File, os.FileInfo) error { return nil }
