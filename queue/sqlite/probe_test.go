package sqlite

import (
	"strconv"
	"strings"
	"testing"
)

// TestProbeLooksPastTheFirstDeliveries: the probe's one-query answer sees
// only the first probeScanLimit deliveries of a group; past them it must
// still find a visible one, and otherwise the earliest time one becomes
// visible.
func TestProbeLooksPastTheFirstDeliveries(t *testing.T) {
	if !strings.Contains(probeFirstQuery, "LIMIT "+strconv.Itoa(probeScanLimit)+")") {
		t.Fatalf("probeFirstQuery does not scan probeScanLimit (%d) rows: %s", probeScanLimit, probeFirstQuery)
	}
	for _, tc := range []struct {
		name      string
		published int
		claimed   int
		wantReady bool
	}{
		{"few, none visible", 10, 10, false},
		{"few, one visible", 10, 9, true},
		{"many, only the last visible", probeScanLimit + 1, probeScanLimit, true},
		{"many, none visible", probeScanLimit + 1, probeScanLimit + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := openBench(t)
			publishBench(t, be, tc.published, []byte("{}"), "{}")
			claimed := claimBench(t, be, tc.claimed)
			if len(claimed) != tc.claimed {
				t.Fatalf("claimed %d, want %d", len(claimed), tc.claimed)
			}
			ready, next, err := be.probe("jobs", "g1")
			if err != nil {
				t.Fatal(err)
			}
			if ready != tc.wantReady {
				t.Errorf("ready: got %v, want %v", ready, tc.wantReady)
			}
			if !ready && next <= be.nowMs() {
				t.Errorf("next visible: got %d, want the end of the lease, after now (%d)", next, be.nowMs())
			}
		})
	}
}
