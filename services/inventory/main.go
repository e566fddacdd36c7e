// Command inventory is orderflow's inventory service: it holds stock per SKU
// and reservations per order, consumes inventory.commands (ReserveStock,
// ReleaseStock) and emits inventory.events (StockReserved,
// StockReservationFailed, StockReleased) through its outbox. The service is
// package service; the command line is pkg/servicecmd's plus --catalog.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/servicecmd"
	"github.com/orderflow/orderflow/pkg/servicehost"
	"github.com/orderflow/orderflow/services/inventory/service"
)

func main() {
	// A reader of its output that goes away (a killed devrun, a closed
	// pipe) must not end the process mid-stop with SIGPIPE: writes to it
	// fail instead, and the graceful stop goes on.
	signal.Ignore(syscall.SIGPIPE)
	// SIGTERM or SIGINT stops the service gracefully, a second one at
	// once (servicecmd.NotifyContext).
	ctx, stop := servicecmd.NotifyContext(context.Background(), service.Name, os.Stderr)
	defer stop()
	if err := run(ctx, os.Args[1:], os.LookupEnv); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, service.Name+":", err)
		os.Exit(1)
	}
}

// command is the command line; catalogFile receives --catalog.
func command(catalogFile *string) servicecmd.Command {
	return servicecmd.Command{
		Name:            service.Name,
		DefaultHTTPAddr: service.DefaultHTTPAddr,
		Summary:         "stock per SKU, reservations per order.",
		Consumes:        contracts.TopicInventoryCommands,
		Emits:           contracts.TopicInventoryEvents,
		Flags: func(fs *flag.FlagSet, env servicecmd.EnvFunc) {
			fs.StringVar(catalogFile, "catalog", env("CATALOG_FILE", ""), "JSON catalogue [{\"sku\",\"name\",\"unit_price_cents\",\"initial_stock\"}] seeding the stock of the SKUs the database does not hold yet (a SKU it holds keeps its stock; one the file drops stays, but orders for it are refused); default the built-in one (env CATALOG_FILE)")
		},
		// A catalogue the service would not start on is refused with the
		// other flags' errors, naming --catalog and CATALOG_FILE.
		Check: func() error { return servicecmd.Catalog(*catalogFile) },
		Open: func(ctx context.Context, cfg servicehost.Config) (*servicehost.Host, error) {
			return service.New(ctx, service.Config{Config: cfg, CatalogFile: *catalogFile})
		},
	}
}

// config is the parsed command line.
type config struct {
	servicecmd.Config
	CatalogFile string
}

func parseConfig(args []string, lookup servicecmd.LookupFunc, out io.Writer) (config, error) {
	var c config
	var err error
	c.Config, err = command(&c.CatalogFile).Parse(args, lookup, out)
	if err != nil {
		return config{}, err
	}
	return c, nil
}

func run(ctx context.Context, args []string, lookup servicecmd.LookupFunc) error {
	var catalogFile string
	return command(&catalogFile).Run(ctx, args, lookup, os.Stderr)
}
