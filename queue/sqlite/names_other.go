//go:build !unix && !windows

package sqlite

import "os"

// checkFileNames cannot count a file's names on this platform.
func checkFileNames(string, os.FileInfo) error { return nil }

// chownLike does nothing here: files have no Unix owner to match.
func chownLike(*os.File, os.FileInfo) error { return nil }
