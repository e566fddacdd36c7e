package cmalloc

import (
	"testing"
)

func TestKeepFreedMemoryLeavesGlibcsOwnSettingsAlone(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want Outcome
	}{
		{"MALLOC_TRIM_THRESHOLD_ set", map[string]string{"MALLOC_TRIM_THRESHOLD_": "1048576"}, LeftToEnvironment},
		{"tunable among others", map[string]string{"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=1048576"}, LeftToEnvironment},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			if got := KeepFreedMemory(lookup, DefaultTrimThreshold); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestContainsTrimThreshold(t *testing.T) {
	tests := []struct {
		tunables string
		want     bool
	}{
		{"", false},
		{"glibc.malloc.trim_threshold=1", true},
		{"glibc.malloc.arena_max=2", false},
		{"glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=1", true},
		{"glibc.malloc.mmap_threshold=1", false},
	}
	for _, tc := range tests {
		if got := containsTrimThreshold(tc.tunables); got != tc.want {
			t.Errorf("containsTrimThreshold(%q): got %v, want %v", tc.tunables, got, tc.want)
		}
	}
}

func TestKeepFreedMemoryRejectsANegativeThreshold(t *testing.T) {
	want := Unsupported
	if isGlibc() {
		want = Rejected
	}
	if got := KeepFreedMemory(func(string) (string, bool) { return "", false }, -1); got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestKeepFreedMemorySetsTheThresholdOnGlibc(t *testing.T) {
	want := Unsupported
	if isGlibc() {
		want = Applied
	}
	if got := KeepFreedMemory(func(string) (string, bool) { return "", false }, DefaultTrimThreshold); got != want {
		t.Errorf("got %v, want %v (glibc: %v)", got, want, isGlibc())
	}
}
