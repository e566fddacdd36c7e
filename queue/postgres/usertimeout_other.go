//go:build !linux

package postgres

import (
	"syscall"
	"time"
)

// userTimeoutControl sets nothing: TCP_USER_TIMEOUT is Linux's (see
// Config.TCPUserTimeout).
func userTimeoutControl(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
