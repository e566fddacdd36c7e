package main

import (
	"runtime/debug"
	"testing"
)

// After resetPeakRSS, the peak RSS is this process's present RSS, not a
// peak it reached before (an earlier in-process variant's).
func TestResetPeakRSSForgetsAnEarlierPeak(t *testing.T) {
	const mib = 1 << 20
	big := make([]byte, 128*mib)
	for i := 0; i < len(big); i += 4096 {
		big[i] = 1
	}
	big = nil
	debug.FreeOSMemory()
	before, err := readProcStats("self")
	if err != nil {
		t.Fatal(err)
	}
	if before.HWMKiB-before.RSSKiB < 100*1024 {
		t.Fatalf("peak %d KiB, RSS %d KiB after touching and freeing 128 MiB: want the peak 100 MiB above RSS to start from", before.HWMKiB, before.RSSKiB)
	}
	if err := resetPeakRSS(); err != nil {
		t.Fatalf("resetPeakRSS: %v", err)
	}
	after, err := readProcStats("self")
	if err != nil {
		t.Fatal(err)
	}
	if after.HWMKiB > before.HWMKiB-100*1024 {
		t.Errorf("peak after resetPeakRSS: got %d KiB, want about the RSS (%d KiB), not the earlier peak (%d KiB)", after.HWMKiB, after.RSSKiB, before.HWMKiB)
	}
}
