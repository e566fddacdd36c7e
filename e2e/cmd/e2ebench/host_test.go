package main

import (
	"context"
	"os"
	"strings"
	"testing"
)

func TestParseCPUTimes(t *testing.T) {
	for _, tc := range []struct {
		line      string
		wantOK    bool
		wantTotal uint64
		wantSteal uint64
	}{
		// user nice system idle iowait irq softirq steal guest guest_nice:
		// guest time is inside user and nice, so it is not added again.
		{"cpu  100 5 50 800 10 1 4 30 7 0", true, 1000, 30},
		{"cpu  100 5 50 800 10 1 4 30", true, 1000, 30},
		{"cpu  100 5 50 800 10 1 4", false, 0, 0},    // a kernel without steal
		{"cpu0 100 5 50 800 10 1 4 30", false, 0, 0}, // one CPU's line, not the sum
		{"cpu  100 x 50 800 10 1 4 30", false, 0, 0},
		{"", false, 0, 0},
	} {
		got, ok := parseCPUTimes(tc.line)
		if ok != tc.wantOK || got.total != tc.wantTotal || got.steal != tc.wantSteal {
			t.Errorf("parseCPUTimes(%q) = %+v, %v; want total %d, steal %d, %v", tc.line, got, ok, tc.wantTotal, tc.wantSteal, tc.wantOK)
		}
	}
}

func TestStealPercent(t *testing.T) {
	for _, tc := range []struct {
		name     string
		from, to cpuTimes
		want     float64
		wantOK   bool
	}{
		{"a tenth stolen", cpuTimes{total: 1000, steal: 10}, cpuTimes{total: 3000, steal: 210}, 10, true},
		{"none stolen", cpuTimes{total: 1000}, cpuTimes{total: 2000}, 0, true},
		{"no time passed", cpuTimes{total: 1000}, cpuTimes{total: 1000}, 0, false},
		{"counters went back", cpuTimes{total: 1000, steal: 50}, cpuTimes{total: 2000, steal: 40}, 0, false},
	} {
		got, ok := stealPercent(tc.from, tc.to)
		if ok != tc.wantOK || got != tc.want {
			t.Errorf("%s: stealPercent = %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestSpeedLine(t *testing.T) {
	steal := 6.25
	for _, tc := range []struct {
		name string
		h    host
		want []string
	}{
		{"both", host{CommitsPerSecond: 13400, StealPercent: &steal}, []string{"commits/s here 13400, 20% of the design machine's 67000", "hypervisor during the run 6.2%"}},
		{"commits only", host{CommitsPerSecond: 67000}, []string{"100% of the design machine's"}},
		{"nothing known", host{}, nil},
	} {
		got := tc.h.speedLine()
		if tc.want == nil && got != "" {
			t.Errorf("%s: speedLine = %q, want nothing", tc.name, got)
		}
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: speedLine = %q, want it to contain %q", tc.name, got, w)
			}
		}
	}
}

func TestProbeCommits(t *testing.T) {
	dir := t.TempDir()
	got, err := probeCommits(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if got <= 0 {
		t.Errorf("probeCommits = %v commits/s, want > 0", got)
	}
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("the probe left %d files in its directory, want none", len(left))
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := probeCommits(ctx, t.TempDir()); err == nil {
		t.Error("probeCommits with a cancelled context succeeded, want an error")
	}
}
