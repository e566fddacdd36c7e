// Package service wires and runs the inventory service: stock per SKU and
// reservations per order in its own SQLite database, the handlers of
// inventory.commands (ReserveStock, ReleaseStock), inventory.events
// (StockReserved, StockReservationFailed, StockReleased) through its outbox,
// and the admin API with the stock routes. The process wiring is
// pkg/servicehost's.
//
// It is importable (unlike the service's internal packages) so that one
// process can host several services:
//
//	svc, err := service.New(ctx, service.Config{Config: servicehost.Config{
//		Queue: q, DataDir: dir, HTTPAddr: "127.0.0.1:0",
//	}})
//	go svc.Run(ctx)                 // until ctx ends; then a graceful stop
//	admin := "http://" + svc.HTTPAddr()
package service

import (
	"context"
	"database/sql"
	"log/slog"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/pkg/catalog"
	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/servicehost"
	"github.com/orderflow/orderflow/services/inventory/internal/adapters"
	"github.com/orderflow/orderflow/services/inventory/internal/app"
	"github.com/orderflow/orderflow/services/inventory/internal/ports"
)

// Name is the service's name: service.name, consumer group, fault prefix.
const Name = "inventory"

// DefaultHTTPAddr is where the admin and stock API listens by default.
const DefaultHTTPAddr = "127.0.0.1:8081"

// Config configures the inventory service: the host's settings (queue,
// data directory, address, telemetry, fault flags; see servicehost.Config)
// and the catalogue. Zero values take the defaults.
type Config struct {
	servicehost.Config
	// CatalogFile is a JSON catalogue seeding the stock of SKUs new to the
	// database; "" is the built-in one (pkg/catalog).
	CatalogFile string
}

// Service is an inventory service ready to run: Run, HTTPAddr, Faults,
// Running and Close.
type Service = servicehost.Host

// New opens the database (seeding the catalogue's stock) and the queue,
// builds the application and its handlers, and binds the HTTP address.
// Nothing runs until Run.
func New(ctx context.Context, cfg Config) (*Service, error) {
	cat, err := catalog.Load(cfg.CatalogFile)
	if err != nil {
		return nil, err
	}
	return servicehost.Open(ctx, servicehost.Spec{
		Name:            Name,
		DefaultHTTPAddr: DefaultHTTPAddr,
		PoisonTopic:     contracts.TopicInventoryEvents,
		PoisonType:      contracts.TypeStockReserved,
		Migrate: func(ctx context.Context, db *sql.DB) error {
			seeded, err := adapters.Migrate(ctx, db, cat)
			if err != nil {
				return err
			}
			logSeeding(ctx, cfg.Logger, seeded)
			return nil
		},
		Wire: wire,
	}, cfg.Config)
}

// logSeeding says what the catalogue did to the stock (logger nil: nothing):
// on an existing data directory a SKU already stocked keeps its stock
// whatever the catalogue's initial_stock, and a SKU the catalogue dropped
// stays in stock (orders for it are refused), which nothing else shows.
func logSeeding(ctx context.Context, logger *slog.Logger, s adapters.Seeding) {
	if logger == nil {
		return
	}
	logger.InfoContext(ctx, "catalogue seeded", slog.Int("new_skus_stocked", len(s.Stocked)),
		slog.Int("known_skus_kept_their_stock", len(s.Kept)))
	if len(s.NotInCatalogue) > 0 {
		logger.WarnContext(ctx, "SKUs in stock that the catalogue no longer lists: kept, but orders for them are refused",
			slog.Any("skus", s.NotInCatalogue))
	}
}

// wire builds inventory's application on the host's parts, registers its
// message handler and returns its HTTP routes.
func wire(_ context.Context, p servicehost.Parts) (func(*echo.Echo), error) {
	uow, err := adapters.NewUnitOfWork(p.UnitOfWork)
	if err != nil {
		return nil, err
	}
	outOfStock := func() []string { return p.Faults.List(faults.InventoryOutOfStockSKUs) }
	application, err := app.New(uow, adapters.NewReadModel(p.DB), app.Config{
		OutOfStock: outOfStock, RestockKeyRetention: p.DedupRetention,
	})
	if err != nil {
		return nil, err
	}
	handlers, err := ports.NewMessageHandlers(application, p.Faults, p.Logger, p.Meter)
	if err != nil {
		return nil, err
	}
	handlers.Register(p.Router)
	return ports.NewHTTP(application).Mount, nil
}
