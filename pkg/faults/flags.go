package faults

import (
	"errors"
	"time"
)

// Names of the flags shared by every service. Each is also an environment
// variable in upper case (HANDLER_LATENCY, …), optionally prefixed with the
// service name (INVENTORY_HANDLER_LATENCY) to target one service.
const (
	// HandlerLatency (duration) delays every message handler before it
	// does anything. Env HANDLER_LATENCY.
	HandlerLatency = "handler_latency"
	// CrashAfterCommit (bool) exits the process right after a handler's
	// local transaction committed and before the message is acked: the
	// message is redelivered and the inbox must recognise it. A message
	// the inbox dropped as a duplicate does not crash, so the redelivery
	// goes through while the flag stays on. Env CRASH_AFTER_COMMIT.
	CrashAfterCommit = "crash_after_commit"
	// CrashMidHandler (bool) exits the process in the middle of a
	// handler, after its state change and before its commit: nothing is
	// committed and the message is redelivered. Env CRASH_MID_HANDLER.
	CrashMidHandler = "crash_mid_handler"
	// Poison (bool) is a one-shot action: setting it to true publishes one
	// unreadable message onto a topic the service emits (its consumers
	// dead-letter it), and the flag falls back to false. Env POISON.
	Poison = "poison"
)

// Names of the service-specific flags.
const (
	// InventoryOutOfStockSKUs (string) is a comma-separated list of SKUs
	// that inventory reports out of stock whatever its stock. Env
	// INVENTORY_OUT_OF_STOCK_SKUS.
	InventoryOutOfStockSKUs = "inventory_out_of_stock_skus"

	// PaymentDeclineRate (rate) is the share of charges the simulated
	// gateway declines. Env PAYMENT_DECLINE_RATE.
	PaymentDeclineRate = "payment_decline_rate"
	// PaymentTransientErrorRate (rate) is the share of payment commands
	// that fail with a transient error before any effect; the queue
	// retries them with backoff. Env PAYMENT_TRANSIENT_ERROR_RATE.
	PaymentTransientErrorRate = "payment_transient_error_rate"
	// PaymentLatency (duration) is the simulated gateway's response time.
	// Env PAYMENT_LATENCY.
	PaymentLatency = "payment_latency"

	// ShippingFailureRate (rate) is the share of shipments the carrier
	// refuses (ShipmentFailed). Env SHIPPING_FAILURE_RATE.
	ShippingFailureRate = "shipping_failure_rate"
	// ShippingLatency (duration) is the simulated carrier's response time.
	// Env SHIPPING_LATENCY.
	ShippingLatency = "shipping_latency"
)

// maxLatency bounds latency flags: a handler sleeping longer than this
// would outlive its lease and be redelivered while it sleeps.
const maxLatency = 10 * time.Minute

func boundedLatency(v any) error {
	if v.(time.Duration) > maxLatency {
		return errors.New("must not exceed 10m")
	}
	return nil
}

// CommonFlags returns the flags every service defines: handler latency,
// the two crash points and the poison action.
func CommonFlags() []Spec {
	return []Spec{
		{Name: HandlerLatency, Type: TypeDuration, Check: boundedLatency,
			Description: "Delay added at the start of every message handler (e.g. 200ms)."},
		{Name: CrashAfterCommit, Type: TypeBool,
			Description: "Exit the process (status 3) right after a handler's local commit, before the ack: the message is redelivered and must be deduplicated."},
		{Name: CrashMidHandler, Type: TypeBool,
			Description: "Exit the process (status 3) in the middle of a handler, before its commit: nothing is committed and the message is redelivered."},
		{Name: Poison, Type: TypeBool,
			Description: "One-shot: set to true to publish one unreadable message onto a topic this service emits (its consumers dead-letter it); falls back to false."},
	}
}

// ServiceFlags returns CommonFlags plus the flags specific to service
// ("inventory", "payment", "shipping"; any other name gets the common
// flags only).
func ServiceFlags(service string) []Spec {
	specs := CommonFlags()
	switch service {
	case "inventory":
		specs = append(specs, Spec{Name: InventoryOutOfStockSKUs, Type: TypeString,
			Description: "Comma-separated SKUs reported out of stock regardless of the stock held (e.g. SKU-1,SKU-3)."})
	case "payment":
		specs = append(specs,
			Spec{Name: PaymentDeclineRate, Type: TypeRate,
				Description: "Probability (0..1) that the gateway declines a charge (PaymentDeclined)."},
			Spec{Name: PaymentTransientErrorRate, Type: TypeRate,
				Description: "Probability (0..1) that a payment command fails transiently before any effect; the queue retries it with backoff."},
			Spec{Name: PaymentLatency, Type: TypeDuration, Check: boundedLatency,
				Description: "Simulated gateway response time for charges and refunds (e.g. 300ms)."},
		)
	case "shipping":
		specs = append(specs,
			Spec{Name: ShippingFailureRate, Type: TypeRate,
				Description: "Probability (0..1) that the carrier refuses a shipment (ShipmentFailed)."},
			Spec{Name: ShippingLatency, Type: TypeDuration, Check: boundedLatency,
				Description: "Simulated carrier response time when scheduling (e.g. 300ms)."},
		)
	}
	return specs
}
