package main

import (
	"slices"
	"testing"
)

func TestWithDefaultGOMAXPROCS(t *testing.T) {
	base := []string{"QUEUE_URL=sqlite:///tmp/q.db", "LOG_LEVEL=warn"}
	tests := []struct {
		name    string
		environ map[string]string // this command's environment
		want    []string
	}{
		{
			name: "unset: one P per service, as go tool task run starts them",
			want: []string{"QUEUE_URL=sqlite:///tmp/q.db", "LOG_LEVEL=warn", "GOMAXPROCS=1"},
		},
		{
			name:    "set here: the services inherit it through os.Environ",
			environ: map[string]string{"GOMAXPROCS": "2"},
			want:    base,
		},
		{
			name:    "set empty here: still the user's choice (Go's default)",
			environ: map[string]string{"GOMAXPROCS": ""},
			want:    base,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tt.environ[k]; return v, ok }
			got := withDefaultGOMAXPROCS(slices.Clone(base), lookup)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
