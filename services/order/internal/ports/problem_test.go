package ports

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/pkg/jsonbody"
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
		{"a body the reader refuses", &jsonbody.Error{Field: "items[1].quantity", Detail: "must be of type integer, got string"},
			400, problemTypeMalformed, 0},
		{"a number beyond its field's range", &jsonbody.Error{Field: "n", Detail: "must be an integer from 0 to 255, got 256", OutOfRange: "256"},
			422, problemTypeValidation, 0},
		{"anything else", errors.New("boom"), 500, "about:blank", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := problemFor(tc.err, problemRequest{route: "POST /orders", keyed: true})
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
		problemTypeUnsupported,
	} {
		name := strings.TrimPrefix(typ, "urn:orderflow:problem:")
		if !strings.Contains(doc, name+" (") {
			t.Errorf("openapi.json: got no %q in the Problem type's description, want every problem type listed", name)
		}
	}
}

// A request refused for now (503) is told how to send it again, for its
// route: a cancellation or a read is not told to send a POST /orders.
func TestProblemForSaysHowToResend(t *testing.T) {
	tests := []struct {
		route   string
		err     error
		want    string
		wantNot string
	}{
		{"POST /orders", fmt.Errorf("place order: %w", context.DeadlineExceeded), "a POST /orders with the same Idempotency-Key", ""},
		{"POST /orders", fmt.Errorf("place order: %w", app.ErrStorageUnavailable), "a POST /orders with the same Idempotency-Key", ""},
		{"POST /orders", fmt.Errorf("place order: %w", app.ErrTooManyOpenOrders), "a POST /orders with the same Idempotency-Key", ""},
		{"POST /orders/:id/cancel", fmt.Errorf("cancel order o-1: %w", context.DeadlineExceeded), "already cancelling changes nothing", "POST /orders"},
		{"POST /orders/:id/cancel", fmt.Errorf("cancel order o-1: %w", app.ErrStorageUnavailable), "already cancelling changes nothing", "POST /orders"},
		{"GET /orders/:id", fmt.Errorf("get order o-1: %w", context.DeadlineExceeded), "send the request again later", "POST /orders"},
		{"GET /orders", fmt.Errorf("list orders: %w", app.ErrStorageUnavailable), "send the request again later", "Idempotency-Key"},
	}
	for _, tc := range tests {
		p := problemFor(tc.err, problemRequest{route: tc.route, keyed: strings.HasPrefix(tc.route, "POST /orders")})
		if !strings.Contains(p.Detail, tc.want) || (tc.wantNot != "" && strings.Contains(p.Detail, tc.wantNot)) {
			t.Errorf("%s, %v: got detail %q, want one saying %q and not %q", tc.route, tc.err, p.Detail, tc.want, tc.wantNot)
		}
	}
	// A placement sent without a key is not told to send "the same" one:
	// to send one, when the refusal came after its transaction began; to
	// send it again, when nothing was placed.
	for _, tc := range []struct {
		err           error
		want, wantNot string
	}{
		{fmt.Errorf("place order: %w", context.DeadlineExceeded), "send an Idempotency-Key with every POST /orders", "the same Idempotency-Key)"},
		{fmt.Errorf("place order: %w", app.ErrStorageUnavailable), "send an Idempotency-Key with every POST /orders", "the same Idempotency-Key)"},
		{fmt.Errorf("place order: %w", app.ErrTooManyOpenOrders), "send the request again later", "Idempotency-Key"},
	} {
		p := problemFor(tc.err, problemRequest{route: "POST /orders"})
		if !strings.Contains(p.Detail, tc.want) || strings.Contains(p.Detail, tc.wantNot) {
			t.Errorf("POST /orders without a key, %v: got detail %q, want one saying %q and not %q", tc.err, p.Detail, tc.want, tc.wantNot)
		}
	}
}
