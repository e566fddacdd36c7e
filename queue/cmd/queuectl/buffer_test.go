package main

import (
	"strings"
	"sync"
	"testing"
	"time"
)

var bufMu sync.Mutex

type lockedBuffer struct {
	b interface {
		Write(p []byte) (int, error)
		String() string
	}
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	bufMu.Lock()
	defer bufMu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	bufMu.Lock()
	defer bufMu.Unlock()
	return l.b.String()
}

func readLocked(b interface{ String() string }) string {
	bufMu.Lock()
	defer bufMu.Unlock()
	return b.String()
}

// waitForLines waits up to 30s until out holds at least n complete lines
// and returns them, or fails the test.
func waitForLines(t *testing.T, out *lockedBuffer, n int) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := out.String()
		lines := strings.SplitAfter(s, "\n")
		lines = lines[:len(lines)-1] // an incomplete last line, or "" after the last newline
		if len(lines) >= n {
			for i := range lines {
				lines[i] = strings.TrimSuffix(lines[i], "\n")
			}
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %d lines of output, got %q", n, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
