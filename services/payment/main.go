// Command payment is the payment service of orderflow. It is a placeholder until the
// services issue lands: it starts, reports that it has nothing to run yet and
// exits cleanly on SIGINT/SIGTERM.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "payment:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	fmt.Println("payment: not implemented yet; waiting for a signal")
	<-ctx.Done()
	return nil
}
