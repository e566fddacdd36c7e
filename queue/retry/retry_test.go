package retry

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestBackoffGrowsExponentiallyUpToTheCap(t *testing.T) {
	c := Config{InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: time.Second}
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{0, 100 * time.Millisecond},
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{3, 400 * time.Millisecond},
		{4, 800 * time.Millisecond},
		{5, time.Second},
		{500, time.Second},
	}
	for _, tt := range tests {
		if got := c.Backoff(tt.attempt); got != tt.want {
			t.Errorf("Backoff(%d): got %v, want %v", tt.attempt, got, tt.want)
		}
	}
}

func TestPermanentIsRecognisedThroughWrapping(t *testing.T) {
	base := errors.New("bad payload")
	err := fmt.Errorf("handle: %w", Permanent(base))
	if !errors.Is(err, ErrPermanent) {
		t.Error("errors.Is(wrapped Permanent, ErrPermanent): got false, want true")
	}
	if !errors.Is(err, base) {
		t.Error("errors.Is(wrapped Permanent, cause): got false, want true")
	}
	if errors.Is(base, ErrPermanent) {
		t.Error("errors.Is(plain error, ErrPermanent): got true, want false")
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil): got non-nil, want nil")
	}
}

func TestValidateNamesEveryProblem(t *testing.T) {
	c := Config{MaxAttempts: -1, Multiplier: 0.5, Jitter: 1, InitialInterval: time.Second, MaxInterval: time.Millisecond}
	err := c.Validate()
	for _, want := range []string{"consumer group", "dead-letter store", "max attempts", "intervals", "multiplier", "jitter"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: got %v, want it to mention %q", err, want)
		}
	}
}

func TestDeliveryKeysAreNotPartOfTheMessage(t *testing.T) {
	for _, k := range []string{"attempt", "first_failed_at", "last_error", "replay_for_group", "_watermill_delayed_for", "_watermill_anything"} {
		if !IsDeliveryKey(k) {
			t.Errorf("IsDeliveryKey(%q): got false, want true", k)
		}
	}
	for _, k := range []string{"traceparent", "correlation_id", "type"} {
		if IsDeliveryKey(k) {
			t.Errorf("IsDeliveryKey(%q): got true, want false", k)
		}
	}
}
