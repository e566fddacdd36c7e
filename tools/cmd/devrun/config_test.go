package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// The tests here run devrun's functions in the test process, on any OS;
// main_test.go's run devrun and its processes (Unix).

func TestChildEnv(t *testing.T) {
	environ := []string{"PATH=/bin", "HTTP_ADDR=127.0.0.1:1", "ORDER_HTTP_ADDR=127.0.0.1:9080", "PAYMENT_LOG_LEVEL=debug",
		"ORDER_QUEUE_URL=sqlite:///elsewhere.db", "ORDER_=x", "ORDERS_X=y"}
	get := func(env []string, key string) string {
		v := ""
		for _, kv := range env { // the last one wins, as in os/exec
			if k, val, _ := strings.Cut(kv, "="); k == key {
				v = val
			}
		}
		return v
	}
	order := childEnv("order", environ, "/data")
	for key, want := range map[string]string{
		"HTTP_ADDR": "127.0.0.1:9080", "QUEUE_URL": "sqlite:///elsewhere.db", "DATA_DIR": "/data", "GOMAXPROCS": "1",
		"ORDER_HTTP_ADDR": "127.0.0.1:9080", "LOG_LEVEL": "", "": "", "S_X": "", "PATH": "/bin",
	} {
		if got := get(order, key); got != want {
			t.Errorf("order: %s=%q, want %q", key, got, want)
		}
	}
	payment := childEnv("payment", environ, "/data")
	for key, want := range map[string]string{
		"HTTP_ADDR": "127.0.0.1:1", "QUEUE_URL": "sqlite:///data/queue.db", "LOG_LEVEL": "debug",
	} {
		if got := get(payment, key); got != want {
			t.Errorf("payment: %s=%q, want %q", key, got, want)
		}
	}
}

func TestRunWithoutBinariesOrWithHelp(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	err := run(context.Background(), nil, []string{"--data-dir", filepath.Join(dir, "data"), "--bin-dir", filepath.Join(dir, "bin")}, &out)
	if err == nil || !strings.Contains(err.Error(), "nothing to run") {
		t.Errorf("no binaries: got %v, want an error saying there is nothing to run", err)
	}
	if err := run(context.Background(), nil, []string{"--help"}, &bytes.Buffer{}); err != nil {
		t.Errorf("--help: got %v, want no error", err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--services", " , "}, "--services names no process"},
		{[]string{"--restart-limit", "-1"}, "--restart-limit -1: must not be negative"},
		{[]string{"--restart-delay", "-1s"}, "--restart-delay -1s: must not be negative"},
		{[]string{"--restart-window", "0s"}, "--restart-window 0s: must be positive"},
		{[]string{"--grace", "-1s"}, "--grace -1s: must not be negative"},
		{[]string{"stray"}, "unexpected arguments"},
	} {
		if err := run(context.Background(), nil, tc.args, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q): got %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}
