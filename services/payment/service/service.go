// Package service wires and runs the payment service: a simulated gateway
// that charges each order at most once and refunds, with a ledger, in its own
// SQLite database; the handlers of payment.commands (ChargePayment,
// RefundPayment), payment.events (PaymentCharged, PaymentDeclined,
// PaymentRefunded) through its outbox, and the admin API with the payment
// routes. The process wiring is pkg/servicehost's.
//
// It is importable (unlike the service's internal packages) so that one
// process can host several services:
//
//	svc, err := service.New(ctx, service.Config{Queue: q, DataDir: dir, HTTPAddr: "127.0.0.1:0"})
//	go svc.Run(ctx)                 // until ctx ends; then a graceful stop
//	admin := "http://" + svc.HTTPAddr()
package service

import (
	"context"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/servicehost"
	"github.com/orderflow/orderflow/services/payment/internal/adapters"
	"github.com/orderflow/orderflow/services/payment/internal/app"
	"github.com/orderflow/orderflow/services/payment/internal/ports"
)

// Name is the service's name: service.name, consumer group, fault prefix.
const Name = "payment"

// DefaultHTTPAddr is where the admin and payment API listens by default.
const DefaultHTTPAddr = "127.0.0.1:8082"

// Config configures the payment service (queue, data directory, address,
// telemetry, fault flags). Zero values take the defaults.
type Config = servicehost.Config

// Service is a payment service ready to run: Run, HTTPAddr, Faults,
// Running and Close.
type Service = servicehost.Host

// New opens the database and the queue, builds the application and its
// handlers, and binds the HTTP address. Nothing runs until Run.
func New(ctx context.Context, cfg Config) (*Service, error) {
	return servicehost.Open(ctx, servicehost.Spec{
		Name:            Name,
		DefaultHTTPAddr: DefaultHTTPAddr,
		PoisonTopic:     contracts.TopicPaymentEvents,
		PoisonType:      contracts.TypePaymentCharged,
		Migrate:         adapters.Migrate,
		Wire:            wire,
	}, cfg)
}

// wire builds payment's application on the host's parts, registers its
// message handler and returns its HTTP routes.
func wire(_ context.Context, p servicehost.Parts) (func(*echo.Echo), error) {
	uow, err := adapters.NewUnitOfWork(p.UnitOfWork)
	if err != nil {
		return nil, err
	}
	gateway, err := adapters.NewSimulatedGateway(p.DB, p.Faults)
	if err != nil {
		return nil, err
	}
	application, err := app.New(uow, gateway, adapters.NewReadModel(p.DB))
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
