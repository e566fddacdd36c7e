// Command payment is orderflow's payment service: a simulated gateway that
// charges each order at most once, refunds, and keeps a ledger to audit. It
// consumes payment.commands (ChargePayment, RefundPayment) and emits
// payment.events (PaymentCharged, PaymentDeclined, PaymentRefunded) through
// its outbox. The service is package service; the command line is
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
	"github.com/orderflow/orderflow/services/payment/service"
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
	Summary:         "simulated charges and refunds, with a ledger.",
	Consumes:        contracts.TopicPaymentCommands,
	Emits:           contracts.TopicPaymentEvents,
	Open:            service.New,
}

func run(ctx context.Context, args []string, lookup servicecmd.LookupFunc) error {
	return command.Run(ctx, args, lookup, os.Stderr)
}
