package sqlite

import (
	"fmt"
	"time"
)

// WriteHealth reports, without writing, whether this process can write to
// the queue: an error when its last write transaction failed (begin,
// commit, or an op on a full, failing or corrupt file) within
// writehealth.FailureWindow with none committed since, or when the path
// it opened no longer names the file it has open (checkFile). nil
// otherwise. A readiness check calls it.
func (b *Backend) WriteHealth() error {
	if err := b.replaced.Load(); err != nil {
		return *err
	}
	if err := b.health.Err(time.Now()); err != nil {
		return fmt.Errorf("sqlite queue %s: %w", b.path, err)
	}
	return nil
}
