//go:build !unix

package loadgen

import "io"

// terminalWidth is 0 (unknown) where the width is not read.
func terminalWidth(io.Writer) int { return 0 }
