package sologate

// Busy reports whether a share asked for now would wait: a handler runs
// alone or waits to.
func (g *Gate) Busy() bool {
	if g.sem.TryAcquire(1) {
		g.sem.Release(1)
		return false
	}
	return true
}
