package app

import (
	"fmt"

	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/services/order/internal/domain"
)

// commandMessage maps a saga command to its contract message.
func commandMessage(c domain.Command) (contracts.Message, error) {
	switch c.Kind {
	case domain.ReserveStock:
		return contracts.ReserveStock{OrderID: c.OrderID, Items: contractItems(c.Items)}, nil
	case domain.ReleaseStock:
		return contracts.ReleaseStock{OrderID: c.OrderID, Items: contractItems(c.Items), Reason: c.Reason}, nil
	case domain.ChargePayment:
		return contracts.ChargePayment{
			OrderID: c.OrderID, CustomerID: c.CustomerID, AmountCents: c.AmountCents, Currency: c.Currency,
		}, nil
	case domain.RefundPayment:
		return contracts.RefundPayment{
			OrderID: c.OrderID, PaymentID: c.PaymentID, AmountCents: c.AmountCents, Currency: c.Currency, Reason: c.Reason,
		}, nil
	case domain.ScheduleShipment:
		return contracts.ScheduleShipment{OrderID: c.OrderID, Items: contractItems(c.Items), Address: contractAddress(c.Address)}, nil
	case domain.CancelShipment:
		return contracts.CancelShipment{OrderID: c.OrderID, ShipmentID: c.ShipmentID, Reason: c.Reason}, nil
	}
	return nil, fmt.Errorf("unknown saga command %q", c.Kind)
}

// publicEvent maps the domain events that other parties may follow to the
// order.events contracts; ok is false for internal events.
func publicEvent(o *domain.Order, e domain.Event) (m contracts.Message, ok bool) {
	switch e := e.(type) {
	case domain.OrderPlaced:
		return contracts.OrderPlaced{
			OrderID: e.OrderID, CustomerID: e.CustomerID, Items: contractItems(e.Items),
			AmountCents: e.TotalCents, Currency: e.Currency, PlacedAt: e.PlacedAt,
		}, true
	case domain.OrderCompleted:
		return contracts.OrderCompleted{
			OrderID: o.ID(), PaymentID: o.PaymentID(), ShipmentID: o.ShipmentID(),
			TrackingNumber: o.TrackingNumber(), CompletedAt: e.At,
		}, true
	case domain.OrderCancelled:
		return contracts.OrderCancelled{OrderID: o.ID(), Reason: e.Reason, CancelledAt: e.At}, true
	case domain.OrderRejected:
		return contracts.OrderRejected{OrderID: o.ID(), Reason: e.Reason, RejectedAt: e.At}, true
	}
	return nil, false
}

func contractItems(items []domain.Item) []contracts.Item {
	out := make([]contracts.Item, len(items))
	for i, it := range items {
		out[i] = contracts.Item{SKU: it.SKU, Quantity: it.Quantity}
	}
	return out
}

func contractAddress(a domain.Address) contracts.Address {
	return contracts.Address{
		Name: a.Name, Line1: a.Line1, Line2: a.Line2, City: a.City, PostalCode: a.PostalCode, Country: a.Country,
	}
}

// decisionMessages returns what a decision sends: its saga commands, then
// the public events it recorded.
func decisionMessages(o *domain.Order, d domain.Decision) ([]contracts.Message, error) {
	var ms []contracts.Message
	for _, c := range d.Commands {
		m, err := commandMessage(c)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	for _, e := range d.Events {
		if m, ok := publicEvent(o, e); ok {
			ms = append(ms, m)
		}
	}
	return ms, nil
}
