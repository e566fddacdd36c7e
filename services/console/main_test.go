package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func lookupFrom(env map[string]string) lookupFunc {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

func TestParseConfig(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		c, err := parseConfig(nil, lookupFrom(nil), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		want := config{HTTPAddr: "127.0.0.1:8090", OrderURL: "http://127.0.0.1:8080", OrderAdminURL: "http://127.0.0.1:8084",
			InventoryURL: "http://127.0.0.1:8081", PaymentURL: "http://127.0.0.1:8082", ShippingURL: "http://127.0.0.1:8083",
			QueueURL: "sqlite://data/queue.db", JaegerUIURL: "http://localhost:16686", Refresh: time.Second,
			UpstreamTimeout: 3 * time.Second, LogLevel: slog.LevelInfo}
		if c != want {
			t.Errorf("got %+v, want %+v", c, want)
		}
	})
	t.Run("environment, then flags", func(t *testing.T) {
		env := map[string]string{
			"HTTP_ADDR": "127.0.0.1:9999", "ORDER_URL": "http://o", "ORDER_ADMIN_URL": "http://oa", "INVENTORY_URL": "http://i",
			"PAYMENT_URL": "http://p", "SHIPPING_URL": "http://s", "QUEUE_URL": "sqlite:///q.db", "JAEGER_UI_URL": "http://j",
			"CATALOG_FILE": "cat.json", "CONSOLE_REFRESH": "2s", "CONSOLE_UPSTREAM_TIMEOUT": "500ms", "LOG_LEVEL": "debug",
		}
		c, err := parseConfig(nil, lookupFrom(env), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		want := config{HTTPAddr: "127.0.0.1:9999", OrderURL: "http://o", OrderAdminURL: "http://oa", InventoryURL: "http://i",
			PaymentURL: "http://p", ShippingURL: "http://s", QueueURL: "sqlite:///q.db", JaegerUIURL: "http://j", CatalogFile: "cat.json",
			Refresh: 2 * time.Second, UpstreamTimeout: 500 * time.Millisecond, LogLevel: slog.LevelDebug}
		if c != want {
			t.Errorf("from the environment: got %+v, want %+v", c, want)
		}
		c, err = parseConfig([]string{"--http-addr", "127.0.0.1:1", "--payment-url", "http://p2", "--refresh", "250ms"}, lookupFrom(env), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if c.HTTPAddr != "127.0.0.1:1" || c.PaymentURL != "http://p2" || c.Refresh != 250*time.Millisecond || c.OrderURL != "http://o" {
			t.Errorf("flags over the environment: got %+v", c)
		}
	})
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"bad refresh in the environment": {nil, map[string]string{"CONSOLE_REFRESH": "often"}, "CONSOLE_REFRESH"},
		"bad log level":                  {[]string{"--log-level", "loud"}, nil, "--log-level"},
		"bad listen address":             {[]string{"--http-addr", "8090"}, nil, "--http-addr"},
		"stray argument":                 {[]string{"serve"}, nil, "unexpected arguments"},
		"unknown flag":                   {[]string{"--nope"}, nil, "flag provided but not defined"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseConfig(tc.args, lookupFrom(tc.env), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"--help"}, lookupFrom(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"Usage: console", "-http-addr", "HTTP_ADDR", "-order-url", "-order-admin-url", "-inventory-url",
		"-payment-url", "-shipping-url", "-queue-url", "QUEUE_URL", "-jaeger-ui-url", "JAEGER_UI_URL", "127.0.0.1:8090"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help does not mention %q:\n%s", want, out.String())
		}
	}
}

func TestRunStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--http-addr", "127.0.0.1:0", "--queue-url", "sqlite://" + t.TempDir() + "/queue.db"}, lookupFrom(nil), &out)
	}()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
	if !strings.Contains(out.String(), "console listening") {
		t.Errorf("log: got %q, want the listening address", out.String())
	}
}

func TestRunRefusesABadCatalogue(t *testing.T) {
	err := run(context.Background(), []string{"--catalog", t.TempDir() + "/missing.json"}, lookupFrom(nil), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "catalogue") {
		t.Errorf("got %v, want a catalogue error", err)
	}
}
