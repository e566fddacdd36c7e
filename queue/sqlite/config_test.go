package sqlite

import (
	"strings"
	"testing"
	"time"
)

// An explicit value in a queue URL must be one the store can use: zero or
// negative is an error naming the parameter, not a silent request for the
// default. Absent parameters keep the defaults; zero stays valid where it
// means something (nack_delay, ack_delay).
func TestURLParamsRejectExplicitZeroAndNegative(t *testing.T) {
	tests := []struct {
		query     string
		wantInErr string
	}{
		{"lease=0s", "lease must be at least 10ms, got 0s"},
		{"lease=0", "lease must be at least 10ms, got 0s"},
		{"lease=-1s", "lease must be at least 10ms, got -1s"},
		{"lease=5ms", "lease must be at least 10ms, got 5ms"},
		{"busy_timeout=0s", "busy_timeout must be at least 1ms, got 0s"},
		{"busy_timeout=-5s", "busy_timeout must be at least 1ms, got -5s"},
		{"claim_batch=0", "claim_batch must be at least 1, got 0"},
		{"orphan_retention=0s", "orphan_retention must be at least 1s, got 0s"},
		{"orphan_retention=day", `orphan_retention="day"`},
		{"claim_batch=-3", "claim_batch must be at least 1, got -3"},
		{"claim_batch=many", `claim_batch="many"`},
		{"nack_delay=-1s", "nack_delay must not be negative, got -1s"},
		{"ack_delay=-1ms", "ack_delay must not be negative, got -1ms"},
		{"lease=soon", `lease="soon"`},
		{"poll_min=0s", "poll_min must be from 10µs to 16ms, got 0s"},
		{"poll_min=5us", "poll_min must be from 10µs to 16ms, got 5µs"},
		{"poll_min=20ms", "poll_min must be from 10µs to 16ms, got 20ms"},
		{"lock_file=maybe", `lock_file="maybe": want true or false`},
		{"lease_time=3s", `unknown parameter "lease_time"`},
		{"lease=0s&claim_batch=0", "claim_batch must be at least 1, got 0"},
		{"lease=0s&claim_batch=0", "lease must be at least 10ms, got 0s"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			var c Config
			err := c.ApplyURLParams(tt.query)
			if err == nil || !strings.Contains(err.Error(), tt.wantInErr) {
				t.Fatalf("got %v, want an error containing %q", err, tt.wantInErr)
			}
		})
	}
}

func TestURLParamsSetValuesAndKeepDefaults(t *testing.T) {
	tests := []struct {
		query string
		check func(c Config) string // "" when c is right
	}{
		{"", func(c Config) string {
			if c.Lease != 30*time.Second || c.BusyTimeout != 30*time.Second || c.ClaimBatch != 64 || c.AckDelay != 2*time.Millisecond || c.NackDelay != 0 || c.PollMin != 500*time.Microsecond || c.NoLockFile {
				return "want the defaults"
			}
			return ""
		}},
		{"synchronous=full", func(c Config) string {
			if c.Synchronous != SynchronousFull || c.Lease != 30*time.Second {
				return "want FULL and the default lease"
			}
			return ""
		}},
		{"lease=10ms&busy_timeout=1ms&claim_batch=1", func(c Config) string {
			if c.Lease != 10*time.Millisecond || c.BusyTimeout != time.Millisecond || c.ClaimBatch != 1 {
				return "want lease 10ms, busy timeout 1ms, claim batch 1"
			}
			return ""
		}},
		{"orphan_retention=24h", func(c Config) string {
			if c.OrphanRetention != 24*time.Hour {
				return "want an orphan retention of 24h"
			}
			return ""
		}},
		{"nack_delay=0s", func(c Config) string {
			if c.NackDelay != 0 {
				return "want nack delay 0 (redeliver at once)"
			}
			return ""
		}},
		{"ack_delay=0s", func(c Config) string {
			if c.AckDelay >= 0 {
				return "want a negative ack delay (commit acks at once)"
			}
			return ""
		}},
		{"poll_min=100us", func(c Config) string {
			if c.PollMin != 100*time.Microsecond || c.PollMax != 16*time.Millisecond {
				return "want poll min 100µs and the default poll max"
			}
			return ""
		}},
		{"lock_file=false", func(c Config) string {
			if !c.NoLockFile {
				return "want no lock file"
			}
			return ""
		}},
		{"lock_file=true", func(c Config) string {
			if c.NoLockFile {
				return "want the lock file"
			}
			return ""
		}},
		{"ack_delay=5ms&nack_delay=1s", func(c Config) string {
			if c.AckDelay != 5*time.Millisecond || c.NackDelay != time.Second {
				return "want ack delay 5ms, nack delay 1s"
			}
			return ""
		}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			var c Config
			if err := c.ApplyURLParams(tt.query); err != nil {
				t.Fatalf("got %v, want no error", err)
			}
			c.setDefaults()
			if err := c.Validate(); err != nil {
				t.Fatalf("validate: got %v, want no error", err)
			}
			if msg := tt.check(c); msg != "" {
				t.Errorf("got %+v: %s", c, msg)
			}
		})
	}
}

func TestValidateSaysWhatItGot(t *testing.T) {
	c := Config{Lease: 5 * time.Millisecond}
	c.setDefaults()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "lease must be at least 10ms, got 5ms") {
		t.Errorf("got %v, want an error containing %q", err, "lease must be at least 10ms, got 5ms")
	}
}

// An ack held back longer than a third of the lease could commit after the
// lease ran out (it is no longer extended once acked): the message would
// be redelivered to another consumer, and the late ack refused. Such a
// pair is refused, from a URL too.
func TestAckDelayMustFitInTheLease(t *testing.T) {
	tests := []struct {
		lease, ackDelay time.Duration
		wantErr         bool
	}{
		{lease: 30 * time.Second, ackDelay: 2 * time.Millisecond, wantErr: false},
		{lease: 30 * time.Second, ackDelay: 10 * time.Second, wantErr: false},
		{lease: 30 * time.Second, ackDelay: 11 * time.Second, wantErr: true},
		{lease: 30 * time.Second, ackDelay: 40 * time.Second, wantErr: true},
		{lease: 10 * time.Millisecond, ackDelay: 2 * time.Millisecond, wantErr: false},
		{lease: 10 * time.Millisecond, ackDelay: -1, wantErr: false},
	}
	for _, tc := range tests {
		c := Config{Lease: tc.lease, AckDelay: tc.ackDelay}
		c.setDefaults()
		err := c.Validate()
		if got := err != nil; got != tc.wantErr {
			t.Errorf("lease %s, ack delay %s: got error %v, want an error: %v", tc.lease, tc.ackDelay, err, tc.wantErr)
		}
	}
	var c Config
	if err := c.ApplyURLParams("lease=30s&ack_delay=40s"); err != nil {
		t.Fatal(err)
	}
	c.setDefaults()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "ack delay") {
		t.Errorf("lease=30s&ack_delay=40s: got %v, want an error naming the ack delay", err)
	}
}
