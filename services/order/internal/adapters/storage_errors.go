package adapters

import (
	"errors"
	"fmt"

	"github.com/orderflow/orderflow/queue/sqlitefile"
	"github.com/orderflow/orderflow/services/order/internal/app"
)

// storageErr returns err marked with app.ErrStorageUnavailable (wrapped
// with %w, err's own chain kept) when it says the database cannot be used
// now (sqlitefile.StorageFailure: the classification the services' message
// handlers and write health use too, so that a failure the API answers
// with a 503 is one the reply handlers retry without dead-lettering, and
// /readyz reports); any other error, and nil, unchanged. Every Store
// method that serves a request or a message returns its errors through it
// (not the operator's RebuildProjections, nor the poison fault's
// EmitPoison).
func storageErr(err error) error {
	if err == nil || errors.Is(err, app.ErrStorageUnavailable) || !sqlitefile.StorageFailure(err) {
		return err
	}
	return fmt.Errorf("%w: %w", app.ErrStorageUnavailable, err)
}
