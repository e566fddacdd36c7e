package service_test

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/pkg/logtest"
	"github.com/orderflow/orderflow/services/order/service"
)

// The start record names both APIs as URLs, as the other services do, and
// a disabled admin API as "off".
func TestStartLogNamesTheAPIsAsURLs(t *testing.T) {
	for _, tc := range []struct {
		adminAddr string
		want      func(svc *service.Service) string
	}{
		{"127.0.0.1:0", func(svc *service.Service) string { return "http://" + svc.AdminAddr() }},
		{"off", func(*service.Service) string { return "off" }},
	} {
		t.Run(tc.adminAddr, func(t *testing.T) {
			var logs logtest.Buffer
			svc, err := service.New(context.Background(), service.Config{
				Queue: openQueue(t, "memory://"), DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", AdminAddr: tc.adminAddr,
				Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, stop := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- svc.Run(ctx) }()
			waitReady(t, "http://"+svc.HTTPAddr()+"/readyz")
			var started map[string]any
			for deadline := time.Now().Add(10 * time.Second); started == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				sc := bufio.NewScanner(strings.NewReader(logs.String()))
				for sc.Scan() {
					var rec map[string]any
					if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == "order service started" {
						started = rec
					}
				}
			}
			stop()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
			if started == nil {
				t.Fatalf("no \"order service started\" record in %s", logs.String())
			}
			if got, want := started["http"], "http://"+svc.HTTPAddr(); got != want {
				t.Errorf("http: got %v, want %q", got, want)
			}
			if got, want := started["admin"], tc.want(svc); got != want {
				t.Errorf("admin: got %v, want %q", got, want)
			}
		})
	}
}
