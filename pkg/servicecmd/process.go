package servicecmd

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/telemetry"
)

// Runner is a service that serves until its context ends, then stops.
type Runner interface {
	Run(ctx context.Context) error
}

// Process is the set-up a service binary runs in, shared by
// Command.Run and the order service's command: the service's telemetry,
// with the C and Go memory settings applied. Close it last.
type Process struct {
	// Telemetry is the service's telemetry, the process's OpenTelemetry
	// globals.
	Telemetry *telemetry.Telemetry
	name      string
	lookup    LookupFunc
	shutdown  func(deadline time.Time)
	stopBy    func() time.Time
}

// StartProcess sets up the process of service name: telemetry logging
// JSON to stderr from level on (StartTelemetry), the C heap's trim
// threshold (KeepFreedCMemory) and the garbage collector's target
// (CollectLessOften), reading the environment through lookup.
// shutdownTimeout is the bound of the stop that ctx's end begins, by
// whose end Close flushes the telemetry (StopDeadline).
func StartProcess(ctx context.Context, name string, level slog.Level, shutdownTimeout time.Duration, lookup LookupFunc, stderr io.Writer) (_ *Process, err error) {
	stopBy := StopDeadline(ctx, shutdownTimeout)
	tel, shutdown, err := StartTelemetry(ctx, name, level, stderr)
	if err != nil {
		return nil, err
	}
	p := &Process{Telemetry: tel, name: name, lookup: lookup, shutdown: shutdown, stopBy: stopBy}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if err := KeepFreedCMemory(ctx, tel.Logger, lookup); err != nil {
		return nil, err
	}
	if err := CollectLessOften(ctx, tel.Logger, lookup); err != nil {
		return nil, err
	}
	return p, nil
}

// Close flushes the telemetry, by the end of the stop's bound.
func (p *Process) Close() { p.shutdown(p.stopBy()) }

// RunService loads the service's fault flags from the environment
// (LoadFaults: its crash points flush the telemetry before they exit),
// opens the service with them and runs it until ctx ends. When ctx ends
// while the service is still being opened (a stop during start-up), it
// returns nil, the failure of the interrupted opening logged at debug
// level (StoppedDuringStart): the stop was asked for, and it is done.
func (p *Process) RunService(ctx context.Context, open func(ctx context.Context, reg *faults.Registry) (Runner, error)) error {
	logger := p.Telemetry.Logger
	reg, err := LoadFaults(p.name, logger, p.Telemetry.ForceFlush, p.lookup)
	if err != nil {
		return err
	}
	svc, err := open(ctx, reg)
	if err != nil {
		if StoppedDuringStart(ctx, logger, err) {
			return nil
		}
		return err
	}
	return svc.Run(ctx)
}
