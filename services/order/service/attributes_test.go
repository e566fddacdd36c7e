package service

import (
	"testing"

	"github.com/orderflow/orderflow/pkg/servicehost"
	"github.com/orderflow/orderflow/services/order/internal/app"
)

// The order service's own spans (POST /orders, reads, timeouts) and the
// queue spans of every service (servicehost.SpanAttributes) name the
// order under one attribute, so that a search by it finds them all; the
// two constants live in packages that must not import each other (the
// application layer knows no host), so this ties them.
func TestOrderSpansAndQueueSpansShareTheOrderAttribute(t *testing.T) {
	if got, want := string(app.AttributeOrderID), servicehost.AttributeOrderID; got != want {
		t.Errorf("got app.AttributeOrderID %q, want servicehost.AttributeOrderID %q", got, want)
	}
}
