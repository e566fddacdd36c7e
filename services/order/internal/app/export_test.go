package app

// SetTimeoutLoopBatch sets how many deadlines one call of the loop fires,
// so that a test can make a round take several batches.
func SetTimeoutLoopBatch(l *TimeoutLoop, n int) { l.batch = n }
