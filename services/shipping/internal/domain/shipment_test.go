package domain_test

import (
	"errors"
	"testing"

	"github.com/orderflow/orderflow/services/shipping/internal/domain"
)

var addr = domain.Address{Name: "Ada", Line1: "1 Road", City: "London", Country: "GB"}

func TestDecideSchedule(t *testing.T) {
	req := domain.Schedule{OrderID: "o-1", Lines: []domain.Line{{SKU: "A", Quantity: 1}}, Address: addr}
	accept := domain.CarrierVerdict{Accepted: true, ShipmentID: "s-new", Carrier: "DHL", TrackingNumber: "T-1"}
	refuse := domain.CarrierVerdict{Reason: "address unreachable"}
	withdrawn := accept
	withdrawn.Withdrawn = true
	scheduled := &domain.Shipment{ID: "s-1", OrderID: "o-1", Status: domain.StatusScheduled, TrackingNumber: "T-0"}
	tests := []struct {
		name        string
		req         domain.Schedule
		existing    *domain.Shipment
		verdict     domain.CarrierVerdict
		wantStatus  domain.Status
		wantID      string
		wantReason  string
		wantChanged bool
		wantErr     error
	}{
		{name: "accepted", req: req, verdict: accept, wantStatus: domain.StatusScheduled, wantID: "s-new", wantChanged: true},
		{name: "refused", req: req, verdict: refuse, wantStatus: domain.StatusFailed, wantReason: "address unreachable", wantChanged: true},
		// The cancellation reached the carrier between the booking and this
		// transaction (its own transaction lost): the carrier still says
		// accepted, but carries nothing.
		{name: "accepted, then withdrawn at the carrier", req: req, verdict: withdrawn,
			wantStatus: domain.StatusCancelled, wantID: "s-new", wantReason: domain.ReasonCancelled, wantChanged: true},
		{name: "repeat after scheduled, withdrawn at the carrier since", req: req, existing: scheduled, verdict: withdrawn,
			wantStatus: domain.StatusScheduled, wantID: "s-1"},
		{name: "repeat after scheduled", req: req, existing: scheduled, verdict: accept, wantStatus: domain.StatusScheduled, wantID: "s-1"},
		{name: "repeat after failure", req: req, existing: &domain.Shipment{OrderID: "o-1", Status: domain.StatusFailed, Reason: "no"},
			verdict: accept, wantStatus: domain.StatusFailed, wantReason: "no"},
		{name: "after cancel", req: req, existing: &domain.Shipment{ID: "s-1", OrderID: "o-1", Status: domain.StatusCancelled},
			verdict: accept, wantStatus: domain.StatusCancelled, wantID: "s-1", wantReason: domain.ReasonCancelled},
		{name: "after a cancel that came first", req: req, existing: &domain.Shipment{OrderID: "o-1", Status: domain.StatusVoided},
			verdict: accept, wantStatus: domain.StatusVoided, wantReason: domain.ReasonVoided},
		{name: "voided at the carrier by a cancel whose own transaction has not run yet", req: req,
			verdict:    domain.CarrierVerdict{Reason: domain.ReasonVoided, Voided: true},
			wantStatus: domain.StatusVoided, wantReason: domain.ReasonVoided, wantChanged: true},
		{name: "no lines", req: domain.Schedule{OrderID: "o-1", Address: addr}, verdict: accept, wantErr: domain.ErrInvalidCommand},
		{name: "no address", req: domain.Schedule{OrderID: "o-1", Lines: req.Lines}, verdict: accept, wantErr: domain.ErrInvalidCommand},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := domain.DecideSchedule(tc.req, tc.existing, tc.verdict)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("error: got %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if got.Shipment.Status != tc.wantStatus || got.Shipment.ID != tc.wantID || got.Shipment.Reason != tc.wantReason {
				t.Errorf("shipment: got %s %q %q, want %s %q %q", got.Shipment.Status, got.Shipment.ID, got.Shipment.Reason, tc.wantStatus, tc.wantID, tc.wantReason)
			}
			if got.Changed != tc.wantChanged {
				t.Errorf("changed: got %v, want %v", got.Changed, tc.wantChanged)
			}
		})
	}
}

func TestDecideCancel(t *testing.T) {
	scheduled := &domain.Shipment{ID: "s-1", OrderID: "o-1", Status: domain.StatusScheduled}
	voided := &domain.Shipment{OrderID: "o-1", Status: domain.StatusVoided}
	none := domain.CarrierCancel{}
	// What the carrier says once it has withdrawn s-1 (by this cancellation
	// or an earlier one).
	back := domain.CarrierCancel{Withdrawn: true, ShipmentID: "s-1", Carrier: "DHL", TrackingNumber: "T-1"}
	tests := []struct {
		name          string
		req           domain.Cancel
		existing      *domain.Shipment
		carrier       domain.CarrierCancel
		wantID        string
		wantCancelled bool
		wantStatus    domain.Status
		wantChanged   bool
	}{
		{"scheduled, id known", domain.Cancel{OrderID: "o-1", ShipmentID: "s-1"}, scheduled, back, "s-1", true, domain.StatusCancelled, true},
		{"scheduled, id unknown", domain.Cancel{OrderID: "o-1"}, scheduled, back, "s-1", true, domain.StatusCancelled, true},
		{"already cancelled", domain.Cancel{OrderID: "o-1"}, &domain.Shipment{ID: "s-1", OrderID: "o-1", Status: domain.StatusCancelled}, back, "s-1", true, "", false},
		{"failed", domain.Cancel{OrderID: "o-1"}, &domain.Shipment{OrderID: "o-1", Status: domain.StatusFailed}, none, "", false, "", false},
		{"other shipment", domain.Cancel{OrderID: "o-1", ShipmentID: "s-x"}, scheduled, none, "s-x", false, "", false},
		{"never scheduled", domain.Cancel{OrderID: "o-1"}, nil, none, "", false, domain.StatusVoided, true},
		{"voided again", domain.Cancel{OrderID: "o-1"}, voided, none, "", false, "", false},
		// The carrier booked, shipping's transaction of the booking was
		// lost, and the saga cancelled blindly: the booking is on record,
		// withdrawn, and the saga told which one.
		{"booked at the carrier only", domain.Cancel{OrderID: "o-1"}, nil, back, "s-1", true, domain.StatusCancelled, true},
		{"booked at the carrier only, voided here", domain.Cancel{OrderID: "o-1"}, voided, back, "s-1", true, domain.StatusCancelled, true},
		{"booked at the carrier only, cancel of another id", domain.Cancel{OrderID: "o-1", ShipmentID: "s-x"}, nil, back,
			"s-x", false, domain.StatusVoided, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := domain.DecideCancel(tc.req, tc.existing, tc.carrier)
			if err != nil {
				t.Fatal(err)
			}
			if got.ShipmentID != tc.wantID || got.Cancelled != tc.wantCancelled {
				t.Errorf("answer: got %q cancelled %v, want %q %v", got.ShipmentID, got.Cancelled, tc.wantID, tc.wantCancelled)
			}
			if got.Changed != tc.wantChanged || (got.Changed && got.Shipment.Status != tc.wantStatus) {
				t.Errorf("stored: got changed %v status %s, want %v %s", got.Changed, got.Shipment.Status, tc.wantChanged, tc.wantStatus)
			}
		})
	}
	if _, err := domain.DecideCancel(domain.Cancel{}, nil, none); !errors.Is(err, domain.ErrInvalidCommand) {
		t.Errorf("cancel without order: got %v, want ErrInvalidCommand", err)
	}
	if _, err := domain.DecideCancel(domain.Cancel{OrderID: "o-1"}, nil, domain.CarrierCancel{Withdrawn: true}); err == nil {
		t.Error("a withdrawal the carrier made of no shipment id: got no error, want one")
	}
}
