//go:build !unix

package sqlite

import "os"

// hardLinks reports how many names (hard links) the file of fi has: not
// known on this platform.
func hardLinks(os.FileInfo) (n uint64, known bool) { return 0, false }
