// Command shipping is orderflow's shipping service: it schedules one
// shipment per order with a simulated carrier and cancels it on request. It
// consumes shipping.commands (ScheduleShipment, CancelShipment) and emits
// shipping.events (ShipmentScheduled, ShipmentFailed, ShipmentCancelled)
// through its outbox. The service is package service; the command line is
// pkg/servicecmd's.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/servicecmd"
	"github.com/orderflow/orderflow/services/shipping/service"
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

// command is the command line.
var command = servicecmd.Command{
	Name:            service.Name,
	DefaultHTTPAddr: service.DefaultHTTPAddr,
	Summary:         "one shipment per order, cancellable.",
	Consumes:        contracts.TopicShippingCommands,
	Emits:           contracts.TopicShippingEvents,
	Open:            service.New,
}

func run(ctx context.Context, args []string, lookup servicecmd.LookupFunc) error {
	return command.Run(ctx, args, lookup, os.Stderr)
}
