package contracts

import (
	"fmt"
	"strings"
	"time"
)

// checker collects the problems of one message, naming each field as it
// appears on the wire ("items[1].quantity").
type checker struct {
	problems []string
}

func (c *checker) addf(field, format string, args ...any) {
	c.problems = append(c.problems, field+" "+fmt.Sprintf(format, args...))
}

// err wraps ErrInvalidMessage with every problem found, or is nil.
func (c *checker) err() error {
	if len(c.problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidMessage, strings.Join(c.problems, "; "))
}

func (c *checker) text(field, v string) {
	if strings.TrimSpace(v) == "" {
		c.addf(field, "is required")
	}
}

// optionalID accepts "" but not an id made of blanks only. Optional free
// text (reasons, address lines, carrier) is not checked at all.
func (c *checker) optionalID(field, v string) {
	if v != "" && strings.TrimSpace(v) == "" {
		c.addf(field, "is blank")
	}
}

func (c *checker) positive(field string, v int64) {
	if v <= 0 {
		c.addf(field, "must be positive, got %d", v)
	}
}

func (c *checker) nonNegative(field string, v int64) {
	if v < 0 {
		c.addf(field, "must not be negative, got %d", v)
	}
}

func (c *checker) currency(field, v string) {
	if !isUpperASCII(v, 3) {
		c.addf(field, "must be an ISO 4217 code such as EUR, got %q", v)
	}
}

// items checks the SKU and quantity of every line and that no SKU repeats;
// atLeastOne also requires a non-empty list.
func (c *checker) items(field string, items []Item, atLeastOne bool) {
	if atLeastOne && len(items) == 0 {
		c.addf(field, "must hold at least one item")
	}
	seen := make(map[string]bool, len(items))
	for i, it := range items {
		at := fmt.Sprintf("%s[%d]", field, i)
		c.text(at+".sku", it.SKU)
		if it.Quantity <= 0 {
			c.addf(at+".quantity", "must be positive, got %d", it.Quantity)
		}
		if seen[it.SKU] {
			c.addf(at+".sku", "repeats %q", it.SKU)
		}
		seen[it.SKU] = true
	}
}

func (c *checker) address(field string, a Address) {
	c.text(field+".name", a.Name)
	c.text(field+".line1", a.Line1)
	c.text(field+".city", a.City)
	if !isUpperASCII(a.Country, 2) {
		c.addf(field+".country", "must be an ISO 3166-1 alpha-2 code such as FR, got %q", a.Country)
	}
}

// timestamp requires a set time that RFC 3339 can carry once in UTC.
func (c *checker) timestamp(field string, t time.Time) {
	if t.IsZero() {
		c.addf(field, "is required")
		return
	}
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		c.addf(field, "year %d is out of range", y)
	}
}

func isUpperASCII(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

func (m ReserveStock) validate() error {
	var c checker
	c.text("order_id", m.OrderID)
	c.items("items", m.Items, true)
	return c.err()
}

func (m ReleaseStock) validate() error {
	var c checker
	c.text("order_id", m.OrderID)
	c.items("items", m.Items, true)
	return c.err()
}

func (m StockReserved) validate() error {
	var c checker
	c.text("order_id", m.OrderID)
	c.items("items", m.Items, true)
	return c.err()
}

func (m StockReservationFailed) validate() error {
	var c checker
	c.text("order_id", m.OrderID)
	c.text("reason", m.Reason)
	c.items("unavailable", m.Unavailable, false)
	return c.err()
}

func (m StockReleased) validate() error {
	var c checker
	c.text("order_id", m.OrderID)
	c.items("items", m.Items, false)
	return c.err()
}

func (m ChargePayment) validate() error {
	var c checker
	c.text("order_id", m.OrderID)
	c.text("customer_id", m.CustomerID)
	c.positive("amount_cents", m.AmountCents)
	c.currency("currency", m.Currency)
	return c.err()
}

func (m RefundPayment) validate() error {
	var c checker
	c.text("order_id", m.OrderID)
	c.optionalID("payment_id", m.PaymentID)
	c.positive("amount_cents", m.AmountCents)
	c.currency("currency", m.Currency)
	return c.err()
}

func (m PaymentCharged) validate() error {
	var c checker
	c.text("order_id", m.OrderID)
	c.text("payment_id", m.PaymentID)
	c.positive("amount_cents", m.AmountCents)
	c.currency("currency", m.Currency)
	return c.err()
}

func (m PaymentDeclined) validate() error {
	var c checker
	c.text("order_id", m.OrderID)
	c.text("reason", m.Reason)
	return c.err()
}

func (m PaymentRefunded) validate() error {
	var c checker
	c.text("order_id", m.OrderID)
	c.optionalID("payment_id", m.PaymentID)
	c.nonNegative("amount_cents", m.AmountCents)
	c.currency("currency", m.Currency)
	return c.err()
}

func (m ScheduleShipment) validate() error {
	var c checker
	c.text("order_id", m.OrderID)
	c.items("items", m.Items, true)
	c.address("address", m.Address)
	return c.err()
}

func (m CancelShipment) validate() error {
	var c checker
	c.text("order_id", m.OrderID)
	c.optionalID("shipment_id", m.ShipmentID)
	return c.err()
}

func (m ShipmentScheduled) validate() error {
	var c checker
	c.text("order_id", m.OrderID)
	c.text("shipment_id", m.ShipmentID)
	c.text("tracking_number", m.TrackingNumber)
	return c.err()
}

func (m ShipmentFailed) validate() error {
	var c checker
	c.text("order_id", m.OrderID)
	c.text("reason", m.Reason)
	return c.err()
}

func (m ShipmentCancelled) validate() error {
	var c checker
	c.text("order_id", m.OrderID)
	c.optionalID("shipment_id", m.ShipmentID)
	return c.err()
}

func (m OrderPlaced) validate() error {
	var c checker
	c.text("order_id", m.OrderID)
	c.text("customer_id", m.CustomerID)
	c.items("items", m.Items, true)
	c.positive("amount_cents", m.AmountCents)
	c.currency("currency", m.Currency)
	c.timestamp("placed_at", m.PlacedAt)
	return c.err()
}

func (m OrderCompleted) validate() error {
	var c checker
	c.text("order_id", m.OrderID)
	c.text("payment_id", m.PaymentID)
	c.text("shipment_id", m.ShipmentID)
	c.text("tracking_number", m.TrackingNumber)
	c.timestamp("completed_at", m.CompletedAt)
	return c.err()
}

func (m OrderCancelled) validate() error {
	var c checker
	c.text("order_id", m.OrderID)
	c.text("reason", m.Reason)
	c.timestamp("cancelled_at", m.CancelledAt)
	return c.err()
}

func (m OrderRejected) validate() error {
	var c checker
	c.text("order_id", m.OrderID)
	c.text("reason", m.Reason)
	c.timestamp("rejected_at", m.RejectedAt)
	return c.err()
}
