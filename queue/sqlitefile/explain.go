package sqlitefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/mattn/go-sqlite3"
)

// Explain adds to err, an error SQLite gave for the database file at path,
// what keeps this process from writing that file, when it can be seen
// from here: a read-only file system, a directory it may not create files
// in (SQLite creates path-wal and path-shm beside the database), or the
// file or a -wal or -shm left beside it that it may not write (left by
// another user, say). SQLite reports all of these as "unable to open
// database file" with the errno of its last attempt — often "no such file
// or directory", of a -shm it could not create — or as "attempt to write a
// readonly database". Explain looks only when err is such an error
// (SQLITE_CANTOPEN, SQLITE_READONLY, SQLITE_PERM); it returns other errors,
// and these when it finds nothing wrong, unchanged. An error it explains
// wraps err, but its text leaves out the errno SQLite appends, which the
// explanation replaces (and which misleads: "no such file or directory"
// for a directory the process may not write). Looking creates and removes
// a temporary file in path's directory.
func Explain(path string, err error) error {
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code {
	case sqlite3.ErrCantOpen, sqlite3.ErrReadonly, sqlite3.ErrPerm:
	default:
		return err
	}
	if reason := whyNotWritable(path, osProbe{}); reason != "" {
		return &explained{reason: reason, err: err}
	}
	return err
}

// explained is an error of SQLite's with the reason Explain found.
type explained struct {
	reason string
	err    error
}

func (e *explained) Error() string { return e.reason + ": " + withoutErrno(e.err) }

func (e *explained) Unwrap() error { return e.err }

// withoutErrno is err's text without the system error that SQLite's
// error in it carries (the errno of its last attempt).
func withoutErrno(err error) string {
	msg := err.Error()
	var se sqlite3.Error
	if errors.As(err, &se) && se.SystemErrno != 0 {
		bare := se
		bare.SystemErrno = 0
		msg = strings.Replace(msg, se.Error(), bare.Error(), 1)
	}
	return msg
}

// writeProbe tries what SQLite needs to do with a database's files.
type writeProbe interface {
	// createIn creates a file in dir and removes it again.
	createIn(dir string) error
	// openForWriting opens an existing file for writing and closes it.
	openForWriting(path string) error
}

type osProbe struct{}

func (osProbe) createIn(dir string) error {
	f, err := os.CreateTemp(dir, ".orderflow-write-probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	return errors.Join(f.Close(), os.Remove(name))
}

func (osProbe) openForWriting(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

// whyNotWritable says what keeps this process from writing the database
// at path and the files SQLite keeps beside it, or "" if it sees nothing.
func whyNotWritable(path string, probe writeProbe) string {
	dir := filepath.Dir(path)
	switch err := probe.createIn(dir); {
	case errors.Is(err, syscall.EROFS):
		return fmt.Sprintf("the file system holding %s is read-only", dir)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("this process may not create files in %s (SQLite creates %s-wal and %s-shm there)",
			dir, filepath.Base(path), filepath.Base(path))
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("directory %s does not exist", dir)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		switch err := probe.openForWriting(p); {
		case errors.Is(err, syscall.EROFS):
			return fmt.Sprintf("the file system holding %s is read-only", p)
		case errors.Is(err, fs.ErrPermission):
			return fmt.Sprintf("%s is read-only for this process", p)
		}
	}
	return ""
}
