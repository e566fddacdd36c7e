package adapters

import (
	"github.com/orderflow/orderflow/pkg/servicedb"
	"github.com/orderflow/orderflow/services/payment/internal/app"
)

// NewUnitOfWork returns app.UnitOfWork on the service's database: each
// command's transaction is seen through Store, with Emit writing to the
// outbox and the message id recorded in the inbox.
func NewUnitOfWork(cfg servicedb.UnitOfWorkConfig) (*servicedb.UnitOfWork[app.Tx], error) {
	return servicedb.NewUnitOfWork(cfg, func(t *servicedb.Tx) app.Tx { return tx{Store: Store{q: t.SQL()}, Tx: t} })
}

// tx is app.Tx: the store's queries on the transaction, and Emit.
type tx struct {
	Store
	*servicedb.Tx
}
