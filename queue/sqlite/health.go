package sqlite

import (
	"fmt"
	"time"

	"github.com/orderflow/orderflow/queue/sqlitefile"
)

// noteWriteError records err, an error of a write of the writer, as a
// write failure if it is a sqlitefile.StorageFailure.
func (b *Backend) noteWriteError(err error) {
	if err != nil && sqlitefile.StorageFailure(err) {
		b.health.Failed(time.Now(), err)
	}
}

// WriteHealth reports, without writing, whether this process can write to
// the queue: an error when its last write transaction failed (begin,
// commit, or an op on a full, failing or corrupt file) within
// sqlitefile.WriteFailureWindow with none committed since, or when the path
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
