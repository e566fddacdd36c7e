package faults_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/orderflow/orderflow/pkg/faults"
)

func newRegistry(t *testing.T, cfg faults.Config) *faults.Registry {
	t.Helper()
	if cfg.Flags == nil {
		cfg.Flags = faults.ServiceFlags("payment")
	}
	r, err := faults.New(cfg)
	if err != nil {
		t.Fatalf("New: got error %v, want nil", err)
	}
	return r
}

func TestSetParsesAndValidates(t *testing.T) {
	tests := []struct {
		name, flag, value string
		wantErr           error
		wantValue         string
	}{
		{"rate", faults.PaymentDeclineRate, "0.5", nil, "0.5"},
		{"rate one", faults.PaymentDeclineRate, "1", nil, "1"},
		{"rate with blanks", faults.PaymentDeclineRate, " 0.25 ", nil, "0.25"},
		{"rate above one", faults.PaymentDeclineRate, "1.5", faults.ErrInvalidValue, ""},
		{"negative rate", faults.PaymentDeclineRate, "-0.1", faults.ErrInvalidValue, ""},
		{"rate NaN", faults.PaymentDeclineRate, "NaN", faults.ErrInvalidValue, ""},
		{"rate not a number", faults.PaymentDeclineRate, "half", faults.ErrInvalidValue, ""},
		{"empty rate is zero", faults.PaymentDeclineRate, "", nil, "0"},
		{"negative zero rate is zero", faults.PaymentDeclineRate, "-0", nil, "0"},
		{"duration", faults.HandlerLatency, "250ms", nil, "250ms"},
		{"duration zero", faults.HandlerLatency, "0", nil, "0s"},
		{"negative duration", faults.HandlerLatency, "-1s", faults.ErrInvalidValue, ""},
		{"duration without unit", faults.HandlerLatency, "5", faults.ErrInvalidValue, ""},
		{"duration too long", faults.HandlerLatency, "11m", faults.ErrInvalidValue, ""},
		{"bool", faults.CrashAfterCommit, "true", nil, "true"},
		{"bool as 1", faults.CrashAfterCommit, "1", nil, "true"},
		{"bool nonsense", faults.CrashAfterCommit, "yes please", faults.ErrInvalidValue, ""},
		{"unknown flag", "no_such_flag", "1", faults.ErrUnknownFlag, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRegistry(t, faults.Config{})
			err := r.Set(tc.flag, tc.value)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Set(%q, %q): got error %v, want %v", tc.flag, tc.value, err, tc.wantErr)
			}
			if tc.wantErr != nil {
				return
			}
			st, err := r.Get(tc.flag)
			if err != nil {
				t.Fatal(err)
			}
			if st.Value != tc.wantValue {
				t.Errorf("value: got %q, want %q", st.Value, tc.wantValue)
			}
			if st.Source != "api" || st.UpdatedAt == nil {
				t.Errorf("source: got %q (updated %v), want api with a time", st.Source, st.UpdatedAt)
			}
		})
	}
}

func TestInvalidSetKeepsOldValue(t *testing.T) {
	r := newRegistry(t, faults.Config{})
	if err := r.Set(faults.PaymentDeclineRate, "0.3"); err != nil {
		t.Fatal(err)
	}
	if err := r.Set(faults.PaymentDeclineRate, "2"); err == nil {
		t.Fatal("Set(2): got nil error, want one")
	}
	if got, want := r.Rate(faults.PaymentDeclineRate), 0.3; got != want {
		t.Errorf("Rate: got %v, want %v", got, want)
	}
}

func TestDefineRejectsBadSpecs(t *testing.T) {
	tests := []struct {
		name string
		spec faults.Spec
	}{
		{"upper case name", faults.Spec{Name: "Bad", Type: faults.TypeBool}},
		{"empty name", faults.Spec{Type: faults.TypeBool}},
		{"dash", faults.Spec{Name: "a-b", Type: faults.TypeBool}},
		{"unknown type", faults.Spec{Name: "x", Type: "int"}},
		{"bad default", faults.Spec{Name: "x", Type: faults.TypeRate, Default: "3"}},
		{"duplicate", faults.Spec{Name: faults.Poison, Type: faults.TypeBool}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRegistry(t, faults.Config{Flags: faults.CommonFlags()})
			if err := r.Define(tc.spec); err == nil {
				t.Errorf("Define(%+v): got nil error, want one", tc.spec)
			}
		})
	}
}

func TestDefaultsAndReset(t *testing.T) {
	r := newRegistry(t, faults.Config{Flags: []faults.Spec{
		{Name: "rate", Type: faults.TypeRate, Default: "0.1"},
		{Name: "skus", Type: faults.TypeString, Default: " A, ,B "},
	}})
	if got, want := r.Rate("rate"), 0.1; got != want {
		t.Errorf("default rate: got %v, want %v", got, want)
	}
	if got, want := r.List("skus"), []string{"A", "B"}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("List: got %q, want %q", got, want)
	}
	if err := r.Set("rate", "0.9"); err != nil {
		t.Fatal(err)
	}
	if err := r.Reset("rate"); err != nil {
		t.Fatal(err)
	}
	st, _ := r.Get("rate")
	if st.Value != "0.1" || st.Source != "default" {
		t.Errorf("after Reset: got value %q source %q, want 0.1 default", st.Value, st.Source)
	}
	if err := r.Reset("nope"); !errors.Is(err, faults.ErrUnknownFlag) {
		t.Errorf("Reset(unknown): got %v, want ErrUnknownFlag", err)
	}
}

func TestLoadEnv(t *testing.T) {
	env := map[string]string{
		"PAYMENT_DECLINE_RATE":    "0.5",
		"HANDLER_LATENCY":         "1s",
		"PAYMENT_HANDLER_LATENCY": "20ms", // service-scoped wins
		"CRASH_MID_HANDLER":       "maybe",
		"PAYMENT_LATENCY":         "",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	r := newRegistry(t, faults.Config{})
	err := r.LoadEnv("PAYMENT_", lookup)
	if !errors.Is(err, faults.ErrInvalidValue) {
		t.Fatalf("LoadEnv: got %v, want ErrInvalidValue for CRASH_MID_HANDLER", err)
	}
	if got, want := r.Rate(faults.PaymentDeclineRate), 0.5; got != want {
		t.Errorf("decline rate: got %v, want %v", got, want)
	}
	if got, want := r.Duration(faults.HandlerLatency), 20*time.Millisecond; got != want {
		t.Errorf("handler latency: got %v, want %v", got, want)
	}
	st, _ := r.Get(faults.PaymentDeclineRate)
	if st.Source != "env" || st.Env != "PAYMENT_DECLINE_RATE" {
		t.Errorf("state: got source %q env %q, want env PAYMENT_DECLINE_RATE", st.Source, st.Env)
	}
	if r.Bool(faults.CrashMidHandler) {
		t.Error("crash_mid_handler: got true after an invalid value, want false")
	}
}

// The state names the variable that set the flag, the service's own when
// it wins over the shared one; a flag not set by the environment names the
// variable that would win.
func TestStateNamesTheVariableThatSetIt(t *testing.T) {
	env := map[string]string{"PAYMENT_HANDLER_LATENCY": "1s", "HANDLER_LATENCY": "2s"}
	r := newRegistry(t, faults.Config{})
	if err := r.LoadEnv("PAYMENT_", func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatalf("LoadEnv: %v", err)
	}
	tests := []struct {
		flag, wantValue, wantSource, wantEnv string
	}{
		{faults.HandlerLatency, "1s", "env", "PAYMENT_HANDLER_LATENCY"},
		{faults.Poison, "false", "default", "PAYMENT_POISON"},
		{faults.PaymentDeclineRate, "0", "default", "PAYMENT_DECLINE_RATE"},
	}
	for _, tt := range tests {
		st, err := r.Get(tt.flag)
		if err != nil {
			t.Fatalf("Get(%s): %v", tt.flag, err)
		}
		if st.Value != tt.wantValue || st.Source != tt.wantSource || st.Env != tt.wantEnv {
			t.Errorf("%s: got value %q source %q env %q, want %q %q %q", tt.flag, st.Value, st.Source, st.Env, tt.wantValue, tt.wantSource, tt.wantEnv)
		}
	}
}

func TestEnvNames(t *testing.T) {
	tests := []struct {
		flag, prefix string
		want         []string
	}{
		{faults.HandlerLatency, "PAYMENT_", []string{"PAYMENT_HANDLER_LATENCY", "HANDLER_LATENCY"}},
		{faults.PaymentDeclineRate, "PAYMENT_", []string{"PAYMENT_DECLINE_RATE"}},
		{faults.Poison, "", []string{"POISON"}},
	}
	for _, tc := range tests {
		got := faults.Spec{Name: tc.flag}.EnvNames(tc.prefix)
		if !slices.Equal(got, tc.want) {
			t.Errorf("EnvNames(%q) of %s: got %v, want %v", tc.prefix, tc.flag, got, tc.want)
		}
	}
}

// A service-scoped variable set empty (a compose file's
// ${PAYMENT_HANDLER_LATENCY:-}) is unset, as every other variable of the
// services: the shared one applies.
func TestLoadEnvTakesAnEmptyVariableAsUnset(t *testing.T) {
	env := map[string]string{"PAYMENT_HANDLER_LATENCY": "", "HANDLER_LATENCY": "200ms", "PAYMENT_DECLINE_RATE": ""}
	r := newRegistry(t, faults.Config{})
	if err := r.LoadEnv("PAYMENT_", func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatalf("LoadEnv: %v", err)
	}
	if got, want := r.Duration(faults.HandlerLatency), 200*time.Millisecond; got != want {
		t.Errorf("handler latency: got %v, want %v from HANDLER_LATENCY", got, want)
	}
	if st, _ := r.Get(faults.HandlerLatency); st.Env != "HANDLER_LATENCY" {
		t.Errorf("handler latency: got env %q, want HANDLER_LATENCY, the variable that set it", st.Env)
	}
	if st, _ := r.Get(faults.PaymentDeclineRate); st.Source == "env" {
		t.Errorf("decline rate: got source %q from an empty PAYMENT_DECLINE_RATE, want the default", st.Source)
	}
}

func TestChanceUsesInjectedRandom(t *testing.T) {
	tests := []struct {
		rate   string
		random float64
		want   bool
	}{
		{"0", 0, false},
		{"0.5", 0.49, true},
		{"0.5", 0.5, false},
		{"1", 0.999, true},
		{"0.1", 0.05, true},
	}
	for _, tc := range tests {
		r := newRegistry(t, faults.Config{Rand: func() float64 { return tc.random }})
		if err := r.Set(faults.PaymentDeclineRate, tc.rate); err != nil {
			t.Fatal(err)
		}
		if got := r.Chance(faults.PaymentDeclineRate); got != tc.want {
			t.Errorf("Chance at rate %s, random %v: got %v, want %v", tc.rate, tc.random, got, tc.want)
		}
	}
}

func TestSleep(t *testing.T) {
	r := newRegistry(t, faults.Config{})
	start := time.Now()
	if err := r.Sleep(context.Background(), faults.HandlerLatency); err != nil {
		t.Fatalf("Sleep(0): got %v, want nil", err)
	}
	if err := r.Set(faults.HandlerLatency, "20ms"); err != nil {
		t.Fatal(err)
	}
	if err := r.Sleep(context.Background(), faults.HandlerLatency); err != nil {
		t.Fatalf("Sleep(20ms): got %v, want nil", err)
	}
	if got := time.Since(start); got < 20*time.Millisecond {
		t.Errorf("Sleep(20ms) took %v, want at least 20ms", got)
	}
	if err := r.Set(faults.HandlerLatency, "10m"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := r.Sleep(ctx, faults.HandlerLatency); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Sleep with a cancelled context: got %v, want DeadlineExceeded", err)
	}
}

func TestCrashPoint(t *testing.T) {
	var codes []int
	r := newRegistry(t, faults.Config{Exit: func(code int) { codes = append(codes, code) }})
	if r.CrashPoint(context.Background(), faults.CrashAfterCommit) {
		t.Fatal("CrashPoint while off: got true, want false")
	}
	if err := r.Set(faults.CrashAfterCommit, "true"); err != nil {
		t.Fatal(err)
	}
	if !r.CrashPoint(context.Background(), faults.CrashAfterCommit) {
		t.Fatal("CrashPoint while on: got false, want true")
	}
	if len(codes) != 1 || codes[0] != faults.ExitCode {
		t.Errorf("exit codes: got %v, want [%d]", codes, faults.ExitCode)
	}
}

// A crash point that fires ends the span of its context as failed, with a
// crash point event, before the flush: the crashed attempt shows in its
// trace (a span not ended is never exported).
func TestCrashPointEndsTheSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	var flushed []int
	r := newRegistry(t, faults.Config{Exit: func(int) {}, Flush: func(context.Context) error {
		flushed = append(flushed, len(rec.Ended()))
		return nil
	}})
	if err := r.Set(faults.CrashMidHandler, "true"); err != nil {
		t.Fatal(err)
	}
	ctx, _ := tp.Tracer("test").Start(context.Background(), "process payment.commands")
	r.CrashPoint(ctx, faults.CrashMidHandler)
	ended := rec.Ended()
	if len(ended) != 1 {
		t.Fatalf("ended spans: got %d, want the handler's", len(ended))
	}
	s := ended[0]
	if s.Status().Code != codes.Error || len(s.Events()) != 1 || s.Events()[0].Name != faults.EventCrashPoint {
		t.Errorf("span: got status %v, events %v; want an error with a %q event", s.Status(), s.Events(), faults.EventCrashPoint)
	}
	if len(flushed) != 1 || flushed[0] != 1 {
		t.Errorf("spans ended at the flush: got %v, want [1] (the span ended before it)", flushed)
	}
}

// A crash point flushes telemetry (Config.Flush) before it exits, and
// only while it fires; a flush that does not finish is given up after
// FlushTimeout (the process exits all the same) and logged.
func TestCrashPointFlushesBeforeExiting(t *testing.T) {
	tests := []struct {
		name      string
		on        bool
		flush     func(ctx context.Context) error
		wantSteps string
		wantLog   string // in the log; "" for no warning about the flush
	}{
		{"off", false, func(context.Context) error { return nil }, "", ""},
		{"flushed", true, func(context.Context) error { return nil }, "flush, exit", ""},
		{"collector unreachable", true, func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		}, "flush, exit", "telemetry not flushed before the crash"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const bound = 50 * time.Millisecond
			var steps []string
			var logs strings.Builder
			r := newRegistry(t, faults.Config{
				Logger:       slog.New(slog.NewTextHandler(&logs, nil)),
				Exit:         func(int) { steps = append(steps, "exit") },
				FlushTimeout: bound,
				Flush: func(ctx context.Context) error {
					steps = append(steps, "flush")
					if d, ok := ctx.Deadline(); !ok || time.Until(d) > bound {
						t.Errorf("flush context: got deadline %v (set %v), want one within %v", d, ok, bound)
					}
					return tc.flush(ctx)
				},
			})
			if err := r.Set(faults.CrashAfterCommit, strconv.FormatBool(tc.on)); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			r.CrashPoint(context.Background(), faults.CrashAfterCommit)
			if took := time.Since(start); took > 20*bound {
				t.Errorf("crash point took %v, want about the flush bound %v at most", took, bound)
			}
			if got := strings.Join(steps, ", "); got != tc.wantSteps {
				t.Errorf("steps: got %q, want %q", got, tc.wantSteps)
			}
			switch got := logs.String(); {
			case tc.wantLog == "" && strings.Contains(got, "telemetry not flushed"):
				t.Errorf("log: got %q, want no warning about the flush", got)
			case !strings.Contains(got, tc.wantLog):
				t.Errorf("log: got %q, want %q in it", got, tc.wantLog)
			}
		})
	}
}

func TestWrongTypePanics(t *testing.T) {
	r := newRegistry(t, faults.Config{})
	for name, f := range map[string]func(){
		"unknown":    func() { r.Chance("nope") },
		"wrong type": func() { r.Chance(faults.CrashAfterCommit) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: got no panic, want one", name)
				}
			}()
			f()
		}()
	}
}

// Require says, as an error, what the typed getters would panic on.
func TestRequire(t *testing.T) {
	r := newRegistry(t, faults.Config{})
	if err := r.Require(faults.PaymentDeclineRate, faults.TypeRate); err != nil {
		t.Errorf("a defined rate: got %v, want nil", err)
	}
	if err := r.Require("nope", faults.TypeRate); !errors.Is(err, faults.ErrUnknownFlag) {
		t.Errorf("unknown: got %v, want ErrUnknownFlag", err)
	}
	if err := r.Require(faults.CrashAfterCommit, faults.TypeRate); !errors.Is(err, faults.ErrWrongType) {
		t.Errorf("wrong type: got %v, want ErrWrongType", err)
	}
}

func TestOnChangeMaySetAgain(t *testing.T) {
	r := newRegistry(t, faults.Config{})
	var seen []string
	err := r.OnChange(faults.Poison, func(v string) error {
		seen = append(seen, v)
		if v == "true" {
			return r.Set(faults.Poison, "false")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Set(faults.Poison, "true"); err != nil {
		t.Fatal(err)
	}
	if got, want := len(seen), 2; got != want || seen[0] != "true" || seen[1] != "false" {
		t.Errorf("OnChange saw %q, want [true false]", seen)
	}
	if r.Bool(faults.Poison) {
		t.Error("poison: got true, want false after the one-shot")
	}
	if err := r.OnChange("nope", func(string) error { return nil }); !errors.Is(err, faults.ErrUnknownFlag) {
		t.Errorf("OnChange(unknown): got %v, want ErrUnknownFlag", err)
	}
}

// The error of an OnChange function (an action that failed) is what Set,
// Reset and LoadEnv return; the change stands.
func TestOnChangeErrorIsReturned(t *testing.T) {
	r := newRegistry(t, faults.Config{})
	failed := errors.New("emit failed")
	if err := r.OnChange(faults.HandlerLatency, func(v string) error {
		if v == "1s" {
			return failed
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := r.Set(faults.HandlerLatency, "1s"); !errors.Is(err, failed) {
		t.Errorf("Set: got %v, want the OnChange error", err)
	}
	if got, want := r.Duration(faults.HandlerLatency), time.Second; got != want {
		t.Errorf("handler latency after the failed action: got %v, want %v (the change stands)", got, want)
	}
	if err := r.Set(faults.HandlerLatency, "2s"); err != nil {
		t.Errorf("Set with the action succeeding: got %v, want nil", err)
	}
	if err := r.LoadEnv("", func(k string) (string, bool) { return "1s", k == "HANDLER_LATENCY" }); !errors.Is(err, failed) {
		t.Errorf("LoadEnv: got %v, want the OnChange error", err)
	}
}

func TestSnapshotSortedAndConcurrent(t *testing.T) {
	r := newRegistry(t, faults.Config{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				_ = r.Set(faults.PaymentDeclineRate, []string{"0.1", "0.2"}[(i+j)%2])
				_ = r.Chance(faults.PaymentDeclineRate)
				_ = r.Snapshot()
			}
		})
	}
	wg.Wait()
	snap := r.Snapshot()
	if got, want := len(snap), len(faults.ServiceFlags("payment")); got != want {
		t.Fatalf("Snapshot: got %d flags, want %d", got, want)
	}
	for i := 1; i < len(snap); i++ {
		if snap[i-1].Name >= snap[i].Name {
			t.Errorf("Snapshot not sorted: %q before %q", snap[i-1].Name, snap[i].Name)
		}
	}
	for _, s := range snap {
		if s.Description == "" || s.Env == "" {
			t.Errorf("flag %s: got empty description or env, want both", s.Name)
		}
	}
}

func TestServiceFlags(t *testing.T) {
	tests := []struct {
		service string
		want    []string
	}{
		{"inventory", []string{faults.InventoryOutOfStockSKUs}},
		{"payment", []string{faults.PaymentDeclineRate, faults.PaymentTransientErrorRate, faults.PaymentLatency}},
		{"shipping", []string{faults.ShippingFailureRate, faults.ShippingLatency}},
		{"order", nil},
	}
	for _, tc := range tests {
		r, err := faults.New(faults.Config{Flags: faults.ServiceFlags(tc.service)})
		if err != nil {
			t.Fatalf("%s: New: %v", tc.service, err)
		}
		for _, n := range append([]string{faults.HandlerLatency, faults.CrashAfterCommit, faults.CrashMidHandler, faults.Poison}, tc.want...) {
			if _, err := r.Get(n); err != nil {
				t.Errorf("%s: Get(%q): got %v, want the flag", tc.service, n, err)
			}
		}
		if got, want := len(r.Snapshot()), 4+len(tc.want); got != want {
			t.Errorf("%s: got %d flags, want %d", tc.service, got, want)
		}
	}
}

// A flag of another service (a payment flag sent to inventory's admin
// API) is unknown here, and the error says whose it is.
func TestUnknownFlagNamesItsService(t *testing.T) {
	r, err := faults.New(faults.Config{Flags: faults.ServiceFlags("inventory")})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		flag, want string
	}{
		{faults.PaymentDeclineRate, "a flag of the payment service"},
		{faults.ShippingLatency, "a flag of the shipping service"},
		{"no_such_flag", `unknown fault flag "no_such_flag"`},
	}
	for _, tc := range tests {
		err := r.Set(tc.flag, "0.5")
		if !errors.Is(err, faults.ErrUnknownFlag) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Set(%s) on inventory: got %v, want ErrUnknownFlag saying %q", tc.flag, err, tc.want)
		}
	}
	if _, err := r.Get(faults.PaymentDeclineRate); err == nil || !strings.Contains(err.Error(), "payment service") {
		t.Errorf("Get(%s) on inventory: got %v, want it to name the payment service", faults.PaymentDeclineRate, err)
	}
}

// A value longer than MaxValueLength, or with a control character (an
// ANSI escape, a NUL, a line break inside it) or invalid UTF-8, is
// refused, whatever its source, rather than stored and shown by the
// console and the logs; spaces around a value are trimmed as before.
func TestSetRefusesControlCharacters(t *testing.T) {
	tests := []struct {
		name, value string
		wantErr     error
		wantValue   string
	}{
		{"SKU list", "SKU-1,SKU-3", nil, "SKU-1,SKU-3"},
		{"non-ASCII", "SKU-é", nil, "SKU-é"},
		{"a trailing line break is trimmed", "SKU-1\n", nil, "SKU-1"},
		{"ANSI escape", "SKU-2\x1b[31m", faults.ErrInvalidValue, ""},
		{"right-to-left override", "SKU-2\u202e", faults.ErrInvalidValue, ""},
		{"longest", strings.Repeat("S", faults.MaxValueLength), nil, strings.Repeat("S", faults.MaxValueLength)},
		{"too long", strings.Repeat("S", faults.MaxValueLength+1), faults.ErrInvalidValue, ""},
		{"NUL", "SKU-1,\x00SKU-2", faults.ErrInvalidValue, ""},
		{"line break inside", "SKU-1\nSKU-2", faults.ErrInvalidValue, ""},
		{"C1 control inside", "SKU-1\u0085SKU-2", faults.ErrInvalidValue, ""},
		{"invalid UTF-8", "SKU-2\xff", faults.ErrInvalidValue, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRegistry(t, faults.Config{Flags: faults.ServiceFlags("inventory")})
			err := r.Set(faults.InventoryOutOfStockSKUs, tc.value)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Set(%q): got error %v, want %v", tc.value, err, tc.wantErr)
			}
			if got := r.String(faults.InventoryOutOfStockSKUs); got != tc.wantValue {
				t.Errorf("value: got %q, want %q", got, tc.wantValue)
			}
		})
	}
}
