package commandhandler

import "time"

// SetClock replaces the handler's clock until the returned func restores it.
func SetClock(clock func() time.Time) (restore func()) {
	old := now
	now = clock
	return func() { now = old }
}
