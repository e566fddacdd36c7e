package domain_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/orderflow/orderflow/services/payment/internal/domain"
)

func TestDecideCharge(t *testing.T) {
	charge := domain.Charge{OrderID: "o-1", CustomerID: "c-1", AmountCents: 4999, Currency: "EUR"}
	charged := &domain.Payment{ID: "p-1", OrderID: "o-1", AmountCents: 4999, Currency: "EUR", Status: domain.StatusCharged}
	approve := domain.GatewayVerdict{Approved: true, PaymentID: "p-new"}
	refunded := domain.GatewayVerdict{Approved: true, PaymentID: "p-new", Refunded: true}
	decline := domain.GatewayVerdict{Reason: "insufficient funds"}
	tests := []struct {
		name        string
		charge      domain.Charge
		existing    *domain.Payment
		verdict     domain.GatewayVerdict
		wantStatus  domain.Status
		wantID      string
		wantReason  string
		wantChanged bool
		wantEntries []int64
		wantErr     error
	}{
		{name: "approved", charge: charge, verdict: approve, wantStatus: domain.StatusCharged, wantID: "p-new", wantChanged: true, wantEntries: []int64{4999}},
		// The refund reached the gateway between the charge and this
		// transaction (its own transaction lost): the gateway still says
		// approved, but holds nothing.
		{name: "approved, then refunded at the gateway", charge: charge, verdict: refunded, wantStatus: domain.StatusRefunded, wantID: "p-new",
			wantReason: domain.ReasonRefunded, wantChanged: true, wantEntries: []int64{4999, -4999}},
		{name: "repeat after charge, refunded at the gateway since", charge: charge, existing: charged, verdict: refunded,
			wantStatus: domain.StatusCharged, wantID: "p-1"},
		{name: "declined", charge: charge, verdict: decline, wantStatus: domain.StatusDeclined, wantReason: "insufficient funds", wantChanged: true},
		{name: "repeat after charge never charges twice", charge: charge, existing: charged, verdict: approve, wantStatus: domain.StatusCharged, wantID: "p-1"},
		{name: "repeat after decline", charge: charge, existing: &domain.Payment{OrderID: "o-1", Status: domain.StatusDeclined, Reason: "no"},
			verdict: approve, wantStatus: domain.StatusDeclined, wantReason: "no"},
		{name: "after refund", charge: charge, existing: &domain.Payment{ID: "p-1", OrderID: "o-1", Status: domain.StatusRefunded},
			verdict: approve, wantStatus: domain.StatusRefunded, wantID: "p-1", wantReason: domain.ReasonRefunded},
		{name: "after a refund that came first", charge: charge, existing: &domain.Payment{OrderID: "o-1", Status: domain.StatusVoided},
			verdict: approve, wantStatus: domain.StatusVoided, wantReason: domain.ReasonVoided},
		{name: "voided at the gateway by a refund whose own transaction has not run yet", charge: charge,
			verdict:    domain.GatewayVerdict{Reason: domain.ReasonVoided, Voided: true},
			wantStatus: domain.StatusVoided, wantReason: domain.ReasonVoided, wantChanged: true},
		{name: "zero amount", charge: domain.Charge{OrderID: "o-1", CustomerID: "c", Currency: "EUR"}, verdict: approve, wantErr: domain.ErrInvalidCommand},
		{name: "no customer", charge: domain.Charge{OrderID: "o-1", AmountCents: 1, Currency: "EUR"}, verdict: approve, wantErr: domain.ErrInvalidCommand},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := domain.DecideCharge(tc.charge, tc.existing, tc.verdict)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("error: got %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if got.Payment.Status != tc.wantStatus || got.Payment.ID != tc.wantID || got.Payment.Reason != tc.wantReason {
				t.Errorf("payment: got %s %q %q, want %s %q %q", got.Payment.Status, got.Payment.ID, got.Payment.Reason, tc.wantStatus, tc.wantID, tc.wantReason)
			}
			if got.Changed != tc.wantChanged {
				t.Errorf("changed: got %v, want %v", got.Changed, tc.wantChanged)
			}
			if got := amounts(got.Entries); !slices.Equal(got, tc.wantEntries) {
				t.Errorf("ledger entries: got %v, want %v", got, tc.wantEntries)
			}
		})
	}
}

// amounts are the entries' amounts, nil for none.
func amounts(entries []domain.Entry) []int64 {
	var out []int64
	for _, e := range entries {
		out = append(out, e.AmountCents)
	}
	return out
}

func TestDecideRefund(t *testing.T) {
	charged := &domain.Payment{ID: "p-1", OrderID: "o-1", AmountCents: 4999, Currency: "EUR", Status: domain.StatusCharged}
	voided := &domain.Payment{OrderID: "o-1", Status: domain.StatusVoided}
	none := domain.GatewayRefund{}
	// What the gateway says once it has refunded p-1 (by this refund or an
	// earlier one).
	back := domain.GatewayRefund{Refunded: true, PaymentID: "p-1", AmountCents: 4999, Currency: "EUR"}
	tests := []struct {
		name        string
		refund      domain.Refund
		existing    *domain.Payment
		gateway     domain.GatewayRefund
		wantID      string
		wantAmount  int64
		wantStatus  domain.Status // stored status when changed
		wantChanged bool
		wantEntries []int64
	}{
		{"charged, id known", domain.Refund{OrderID: "o-1", PaymentID: "p-1", Currency: "EUR"}, charged, back, "p-1", 4999, domain.StatusRefunded, true, []int64{-4999}},
		{"charged, id unknown", domain.Refund{OrderID: "o-1", Currency: "EUR"}, charged, back, "p-1", 4999, domain.StatusRefunded, true, []int64{-4999}},
		{"already refunded", domain.Refund{OrderID: "o-1", Currency: "EUR"},
			&domain.Payment{ID: "p-1", OrderID: "o-1", AmountCents: 4999, Currency: "EUR", Status: domain.StatusRefunded}, back, "p-1", 4999, "", false, nil},
		{"declined", domain.Refund{OrderID: "o-1", Currency: "EUR"},
			&domain.Payment{OrderID: "o-1", Status: domain.StatusDeclined}, none, "", 0, "", false, nil},
		{"other payment id", domain.Refund{OrderID: "o-1", PaymentID: "p-x", Currency: "EUR"}, charged, none, "p-x", 0, "", false, nil},
		{"never charged", domain.Refund{OrderID: "o-1", Currency: "EUR"}, nil, none, "", 0, domain.StatusVoided, true, nil},
		{"voided again", domain.Refund{OrderID: "o-1", Currency: "EUR"}, voided, none, "", 0, "", false, nil},
		// The gateway charged, payment's transaction of the charge was
		// lost, and the saga refunded blindly: the ledger gets the charge
		// the gateway took and its refund, and the saga the amount.
		{"charged at the gateway only", domain.Refund{OrderID: "o-1", Currency: "EUR"}, nil, back,
			"p-1", 4999, domain.StatusRefunded, true, []int64{4999, -4999}},
		{"charged at the gateway only, voided here", domain.Refund{OrderID: "o-1", Currency: "EUR"}, voided, back,
			"p-1", 4999, domain.StatusRefunded, true, []int64{4999, -4999}},
		{"charged at the gateway only, refund of another id", domain.Refund{OrderID: "o-1", PaymentID: "p-x", Currency: "EUR"}, nil, back,
			"p-x", 0, domain.StatusVoided, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := domain.DecideRefund(tc.refund, tc.existing, tc.gateway)
			if err != nil {
				t.Fatal(err)
			}
			if got.PaymentID != tc.wantID || got.AmountCents != tc.wantAmount {
				t.Errorf("answer: got %q %d, want %q %d", got.PaymentID, got.AmountCents, tc.wantID, tc.wantAmount)
			}
			if got.Changed != tc.wantChanged || (got.Changed && got.Payment.Status != tc.wantStatus) {
				t.Errorf("stored: got changed %v status %s, want %v %s", got.Changed, got.Payment.Status, tc.wantChanged, tc.wantStatus)
			}
			if got := amounts(got.Entries); !slices.Equal(got, tc.wantEntries) {
				t.Errorf("ledger entries: got %v, want %v", got, tc.wantEntries)
			}
		})
	}
	if _, err := domain.DecideRefund(domain.Refund{}, nil, none); !errors.Is(err, domain.ErrInvalidCommand) {
		t.Errorf("refund without order: got %v, want ErrInvalidCommand", err)
	}
	if _, err := domain.DecideRefund(domain.Refund{OrderID: "o-1"}, nil, domain.GatewayRefund{Refunded: true}); err == nil {
		t.Error("refund the gateway made of no payment id: got no error, want one")
	}
}
