package sqlite

import (
	"errors"

	"github.com/orderflow/orderflow/queue/backend"
)

func isLeaseLost(err error) bool { return errors.Is(err, backend.ErrLeaseLost) }
