package browsertest

import "testing"

// A runner that exports CI=1 (or CI=yes) is CI too: the browser test must
// fail there without Chromium, not skip.
func TestInCI(t *testing.T) {
	for ci, want := range map[string]bool{
		"": false, "false": false, "FALSE": false, "0": false, " 0 ": false,
		"true": true, "1": true, "yes": true, "True": true,
	} {
		if got := inCI(ci); got != want {
			t.Errorf("inCI(%q): got %v, want %v", ci, got, want)
		}
	}
}
