package domain_test

import (
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/orderflow/orderflow/services/inventory/internal/domain"
)

func stockOf(avail map[string]int) map[string]domain.Stock {
	out := map[string]domain.Stock{}
	for sku, n := range avail {
		out[sku] = domain.Stock{SKU: sku, Available: n, Initial: n}
	}
	return out
}

func lines(kv ...any) []domain.Line {
	var out []domain.Line
	for i := 0; i < len(kv); i += 2 {
		out = append(out, domain.Line{SKU: kv[i].(string), Quantity: kv[i+1].(int)})
	}
	return out
}

func TestReserve(t *testing.T) {
	reserved := &domain.Reservation{OrderID: "o-1", Status: domain.StatusReserved, Lines: lines("A", 1)}
	failed := &domain.Reservation{OrderID: "o-1", Status: domain.StatusFailed, Reason: domain.ReasonOutOfStock, Unavailable: lines("A", 9)}
	tests := []struct {
		name          string
		lines         []domain.Line
		existing      *domain.Reservation
		stock         map[string]int
		forced        []string
		wantStatus    domain.Status
		wantChanged   bool
		wantReason    string
		wantUnavail   []domain.Line
		wantAvailable map[string]int
		wantErr       error
	}{
		{name: "enough stock", lines: lines("A", 2, "B", 1), stock: map[string]int{"A": 5, "B": 1},
			wantStatus: domain.StatusReserved, wantChanged: true, wantAvailable: map[string]int{"A": 3, "B": 0}},
		{name: "exactly all", lines: lines("A", 5), stock: map[string]int{"A": 5},
			wantStatus: domain.StatusReserved, wantChanged: true, wantAvailable: map[string]int{"A": 0}},
		{name: "one line short takes nothing", lines: lines("A", 2, "B", 2), stock: map[string]int{"A": 5, "B": 1},
			wantStatus: domain.StatusFailed, wantChanged: true, wantReason: domain.ReasonOutOfStock, wantUnavail: lines("B", 2)},
		{name: "unknown sku", lines: lines("Z", 1), stock: map[string]int{"A": 5},
			wantStatus: domain.StatusFailed, wantChanged: true, wantReason: domain.ReasonOutOfStock, wantUnavail: lines("Z", 1)},
		{name: "forced out of stock", lines: lines("A", 1), stock: map[string]int{"A": 5}, forced: []string{"A"},
			wantStatus: domain.StatusFailed, wantChanged: true, wantReason: domain.ReasonOutOfStock, wantUnavail: lines("A", 1)},
		{name: "repeat after reserved", lines: lines("A", 1), existing: reserved, stock: map[string]int{"A": 5},
			wantStatus: domain.StatusReserved},
		{name: "repeat after failed", lines: lines("A", 9), existing: failed, stock: map[string]int{"A": 50},
			wantStatus: domain.StatusFailed, wantReason: domain.ReasonOutOfStock, wantUnavail: lines("A", 9)},
		{name: "after release", lines: lines("A", 1), existing: &domain.Reservation{OrderID: "o-1", Status: domain.StatusReleased},
			stock: map[string]int{"A": 5}, wantStatus: domain.StatusFailed, wantReason: domain.ReasonAlreadyReleased},
		{name: "after tombstone", lines: lines("A", 1), existing: &domain.Reservation{OrderID: "o-1", Status: domain.StatusTombstone},
			stock: map[string]int{"A": 5}, wantStatus: domain.StatusFailed, wantReason: domain.ReasonReleasedFirst},
		{name: "no lines", stock: map[string]int{"A": 5}, wantErr: domain.ErrInvalidOrder},
		{name: "zero quantity", lines: lines("A", 0), stock: map[string]int{"A": 5}, wantErr: domain.ErrInvalidQuantity},
		{name: "repeated sku", lines: lines("A", 1, "A", 1), stock: map[string]int{"A": 5}, wantErr: domain.ErrInvalidOrder},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := domain.Reserve("o-1", tc.lines, tc.existing, stockOf(tc.stock), tc.forced)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("error: got %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if got.Reservation.Status != tc.wantStatus {
				t.Errorf("status: got %s, want %s", got.Reservation.Status, tc.wantStatus)
			}
			if got.Changed != tc.wantChanged {
				t.Errorf("changed: got %v, want %v", got.Changed, tc.wantChanged)
			}
			if got.Reservation.Reason != tc.wantReason {
				t.Errorf("reason: got %q, want %q", got.Reservation.Reason, tc.wantReason)
			}
			if !reflect.DeepEqual(got.Reservation.Unavailable, tc.wantUnavail) {
				t.Errorf("unavailable: got %v, want %v", got.Reservation.Unavailable, tc.wantUnavail)
			}
			for _, s := range got.Stock {
				if want, ok := tc.wantAvailable[s.SKU]; !ok || s.Available != want {
					t.Errorf("available %s: got %d, want %d", s.SKU, s.Available, want)
				}
				if s.Available < 0 || !s.Conserved() {
					t.Errorf("stock %+v: not conserved", s)
				}
			}
			if got, want := len(got.Stock), len(tc.wantAvailable); got != want {
				t.Errorf("changed stock rows: got %d, want %d", got, want)
			}
		})
	}
}

func TestRelease(t *testing.T) {
	held := map[string]domain.Stock{"A": {SKU: "A", Available: 3, Reserved: 2, Initial: 5}}
	tests := []struct {
		name         string
		existing     *domain.Reservation
		wantStatus   domain.Status
		wantChanged  bool
		wantReleased []domain.Line
		wantAvail    int
		wantErr      bool
	}{
		{"reserved", &domain.Reservation{OrderID: "o-1", Status: domain.StatusReserved, Lines: lines("A", 2)},
			domain.StatusReleased, true, lines("A", 2), 5, false},
		{"already released", &domain.Reservation{OrderID: "o-1", Status: domain.StatusReleased, Lines: lines("A", 2)},
			domain.StatusReleased, false, lines("A", 2), -1, false},
		{"failed", &domain.Reservation{OrderID: "o-1", Status: domain.StatusFailed},
			domain.StatusFailed, false, []domain.Line{}, -1, false},
		{"never reserved", nil, domain.StatusTombstone, true, []domain.Line{}, -1, false},
		{"tombstone again", &domain.Reservation{OrderID: "o-1", Status: domain.StatusTombstone},
			domain.StatusTombstone, false, []domain.Line{}, -1, false},
		{"more than reserved", &domain.Reservation{OrderID: "o-1", Status: domain.StatusReserved, Lines: lines("A", 3)},
			"", false, nil, -1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := domain.Release("o-1", tc.existing, held)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error: got %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if got.Reservation.Status != tc.wantStatus || got.Changed != tc.wantChanged {
				t.Errorf("got status %s changed %v, want %s %v", got.Reservation.Status, got.Changed, tc.wantStatus, tc.wantChanged)
			}
			if !reflect.DeepEqual(got.Released, tc.wantReleased) {
				t.Errorf("released: got %v, want %v", got.Released, tc.wantReleased)
			}
			if tc.wantAvail >= 0 {
				if len(got.Stock) != 1 || got.Stock[0].Available != tc.wantAvail || !got.Stock[0].Conserved() {
					t.Errorf("stock: got %+v, want A available %d and conserved", got.Stock, tc.wantAvail)
				}
			}
		})
	}
}

func TestRestock(t *testing.T) {
	s := domain.Stock{SKU: "A", Available: 1, Initial: 1}
	if err := s.Restock(4); err != nil {
		t.Fatal(err)
	}
	if s.Available != 5 || s.Restocked != 4 || !s.Conserved() {
		t.Errorf("after restock: got %+v, want available 5, restocked 4", s)
	}
	for _, n := range []int{0, -1} {
		if err := s.Restock(n); !errors.Is(err, domain.ErrInvalidQuantity) {
			t.Errorf("Restock(%d): got %v, want ErrInvalidQuantity", n, err)
		}
	}
}

// A restock that would overflow the counts is refused and changes nothing:
// wrapping around would drive the stock negative.
func TestRestockOverflow(t *testing.T) {
	tests := []struct {
		name    string
		stock   domain.Stock
		n       int
		wantErr error
	}{
		{"max on empty stock", domain.Stock{SKU: "A"}, math.MaxInt, nil},
		{"max on one unit", domain.Stock{SKU: "A", Available: 1, Initial: 1}, math.MaxInt, domain.ErrInvalidQuantity},
		{"max on reserved units", domain.Stock{SKU: "A", Reserved: 2, Initial: 2}, math.MaxInt - 1, domain.ErrInvalidQuantity},
		{"up to the limit", domain.Stock{SKU: "A", Available: 5, Reserved: 5, Initial: 10}, math.MaxInt - 10, nil},
		{"one past the limit", domain.Stock{SKU: "A", Available: 5, Reserved: 5, Initial: 10}, math.MaxInt - 9, domain.ErrInvalidQuantity},
		{"after an earlier restock", domain.Stock{SKU: "A", Available: 3, Initial: 1, Restocked: 2}, math.MaxInt - 2, domain.ErrInvalidQuantity},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.stock
			err := s.Restock(tc.n)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("Restock(%d): got %v, want %v", tc.n, err, tc.wantErr)
			}
			if err != nil && s != tc.stock {
				t.Errorf("after a refused restock: got %+v, want %+v unchanged", s, tc.stock)
			}
			if !s.Conserved() {
				t.Errorf("after restock: got %+v, want it conserved", s)
			}
		})
	}
}
