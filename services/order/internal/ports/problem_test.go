package ports

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/services/order/internal/app"
)

// problemFor maps the application's errors, however wrapped, to a status,
// a problem type the OpenAPI document lists, and a Retry-After for the
// refusals a client should send again.
func TestProblemForStatuses(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		typ        string
		retryAfter time.Duration
	}{
		{"storage unavailable", fmt.Errorf("place order: %w: save order: database or disk is full", app.ErrStorageUnavailable),
			503, problemTypeStorage, storageRetryAfter},
		{"storage unavailable in a query", fmt.Errorf("get order o-1: %w", app.ErrStorageUnavailable), 503, problemTypeStorage, storageRetryAfter},
		{"too many open orders", fmt.Errorf("place order: %w", app.ErrTooManyOpenOrders), 503, problemTypeOverloaded, overloadRetryAfter},
		{"conflict", fmt.Errorf("cancel: %w", app.ErrConflict), 409, problemTypeConflict, 0},
		{"not found", fmt.Errorf("get order: %w", app.ErrOrderNotFound), 404, problemTypeNotFound, 0},
		{"deadline", fmt.Errorf("place order: %w", context.DeadlineExceeded), 503, "about:blank", overloadRetryAfter},
		{"anything else", errors.New("boom"), 500, "about:blank", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := problemFor(tc.err)
			if p.Status != tc.status || p.Type != tc.typ || p.RetryAfter != tc.retryAfter {
				t.Errorf("problemFor(%v): got status %d, type %s, Retry-After %v; want %d, %s, %v",
					tc.err, p.Status, p.Type, p.RetryAfter, tc.status, tc.typ, tc.retryAfter)
			}
			if strings.Contains(p.Detail, "disk is full") {
				t.Errorf("detail: got %q, want the fixed text, not the error's", p.Detail)
			}
		})
	}
}

// Every problem type of the API is listed in the OpenAPI document's
// Problem schema.
func TestOpenAPIListsTheProblemTypes(t *testing.T) {
	doc := string(OpenAPI)
	for _, typ := range []string{
		problemTypeValidation, problemTypeMalformed, problemTypeNotFound, problemTypeNotCancellable,
		problemTypeIdempotency, problemTypeConflict, problemTypeTooLarge, problemTypeOverloaded, problemTypeStorage,
	} {
		name := strings.TrimPrefix(typ, "urn:orderflow:problem:")
		if !strings.Contains(doc, name+" (") {
			t.Errorf("openapi.json: got no %q in the Problem type's description, want every problem type listed", name)
		}
	}
}
