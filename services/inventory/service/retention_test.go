package service_test

import (
	"testing"

	"github.com/orderflow/orderflow/pkg/servicehost"
	"github.com/orderflow/orderflow/services/inventory/internal/app"
)

// A restock's Idempotency-Key is documented to be kept as long as the
// inbox keeps a message id, the window in which any retry is answered as a
// replay; the two constants live in packages that must not import each
// other (the application layer knows no host), so this ties them.
func TestRestockKeysAreKeptAsLongAsInboxIds(t *testing.T) {
	if app.RestockKeyRetention != servicehost.InboxRetention {
		t.Errorf("got app.RestockKeyRetention %v, want servicehost.InboxRetention %v", app.RestockKeyRetention, servicehost.InboxRetention)
	}
}
