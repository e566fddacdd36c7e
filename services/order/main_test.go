package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/pkg/servicecmd"
)

func TestParseConfig(t *testing.T) {
	env := func(m map[string]string) servicecmd.LookupFunc {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, c config)
		wantErr string
	}{
		{"defaults", nil, nil, func(t *testing.T, c config) {
			s := c.Service
			if s.QueueURL != "sqlite://data/queue.db" || s.DataDir != "data" || s.HTTPAddr != "127.0.0.1:8080" ||
				s.AdminAddr != "127.0.0.1:8084" || s.StepTimeout != 30*time.Second || s.MaxOpenOrders != 2000 || c.Command != "" {
				t.Errorf("got %+v, want the documented defaults", s)
			}
		}, ""},
		{"environment", nil, map[string]string{
			"QUEUE_URL": "postgres://u@h/db", "DATA_DIR": "/tmp/x", "HTTP_ADDR": ":9", "ADMIN_ADDR": "off", "STEP_TIMEOUT": "2s",
		}, func(t *testing.T, c config) {
			s := c.Service
			if s.QueueURL != "postgres://u@h/db" || s.DataDir != "/tmp/x" || s.HTTPAddr != ":9" || s.AdminAddr != "off" || s.StepTimeout != 2*time.Second {
				t.Errorf("got %+v, want the environment's values", s)
			}
		}, ""},
		{"flags beat the environment", []string{"--step-timeout", "5s", "--data-dir", "d"}, map[string]string{"STEP_TIMEOUT": "2s"},
			func(t *testing.T, c config) {
				if c.Service.StepTimeout != 5*time.Second || c.Service.DataDir != "d" {
					t.Errorf("got %+v, want the flags' values", c.Service)
				}
			}, ""},
		{"rebuild-projections", []string{"rebuild-projections", "--data-dir", "d"}, nil, func(t *testing.T, c config) {
			if c.Command != "rebuild-projections" || c.Service.DataDir != "d" {
				t.Errorf("got %q %q, want rebuild-projections in d", c.Command, c.Service.DataDir)
			}
		}, ""},
		{"no open-order limit", []string{"--max-open-orders", "0"}, nil, func(t *testing.T, c config) {
			if c.Service.MaxOpenOrders >= 0 {
				t.Errorf("got MaxOpenOrders %d, want it negative (service.Config's no limit)", c.Service.MaxOpenOrders)
			}
		}, ""},
		{"open-order limit from the environment", nil, map[string]string{"MAX_OPEN_ORDERS": "50"}, func(t *testing.T, c config) {
			if c.Service.MaxOpenOrders != 50 {
				t.Errorf("got MaxOpenOrders %d, want 50", c.Service.MaxOpenOrders)
			}
		}, ""},
		{"negative open-order limit", []string{"--max-open-orders", "-3"}, nil, nil, "max-open-orders"},
		{"unknown command", []string{"explode"}, nil, nil, "unknown command"},
		{"bad duration in the environment", nil, map[string]string{"STEP_TIMEOUT": "soon"}, nil, "STEP_TIMEOUT"},
		{"bad log level", []string{"--log-level", "loud"}, nil, nil, "log-level"},
		{"stray argument", []string{"--data-dir", "d", "extra"}, nil, nil, "unexpected arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			c, err := parseConfig(tc.args, env(tc.env), &out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			tc.check(t, c)
		})
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := parseConfig([]string{"--help"}, func(string) (string, bool) { return "", false }, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"rebuild-projections", "QUEUE_URL", "DATA_DIR", "HTTP_ADDR", "ADMIN_ADDR", "STEP_TIMEOUT", "CRASH_AFTER_COMMIT", "OTEL_"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help does not mention %s", want)
		}
	}
}
