// Command shipping is the shipping service of orderflow. It is a placeholder until the
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
		fmt.Fprintln(os.Stderr, "shipping:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	fmt.Println("shipping: not implemented yet; waiting for a signal")
	<-ctx.Done()
	return nil
}
