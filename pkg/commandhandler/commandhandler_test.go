package commandhandler_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/mattn/go-sqlite3"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/orderflow/orderflow/pkg/commandhandler"
	"github.com/orderflow/orderflow/pkg/contracts"
	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/logtest"
	"github.com/orderflow/orderflow/queue"
)

var (
	errInvalid   = errors.New("invalid command")
	errTransient = errors.New("database busy")
	errDiskFull  = fmt.Errorf("commit: %w", sqlite3.Error{Code: sqlite3.ErrFull})
	errLocked    = fmt.Errorf("begin: %w", sqlite3.Error{Code: sqlite3.ErrBusy})
)

func encode(t *testing.T, m contracts.Message) *message.Message {
	t.Helper()
	payload, meta, err := contracts.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	msg := message.NewMessage(watermill.NewUUID(), payload)
	for k, v := range meta {
		msg.Metadata.Set(k, v)
	}
	return msg
}

func TestHandle(t *testing.T) {
	tests := []struct {
		name        string
		msg         func(t *testing.T) *message.Message
		result      error // what dispatch returns
		duplicate   bool
		crash       bool // crash_after_commit on
		wantErr     error
		permanent   bool
		unavailable bool
		dispatch    bool
		exits       int
		outcome     string
	}{
		{name: "ok", result: nil, dispatch: true, outcome: commandhandler.OutcomeOK},
		{name: "duplicate", duplicate: true, dispatch: true, outcome: commandhandler.OutcomeDuplicate},
		{name: "transient failure is retried", result: errTransient, wantErr: errTransient, dispatch: true, outcome: commandhandler.OutcomeFailed},
		{name: "invalid command is permanent", result: errInvalid, wantErr: errInvalid, permanent: true, dispatch: true, outcome: commandhandler.OutcomeFailed},
		{name: "undecodable is permanent", msg: func(*testing.T) *message.Message {
			msg := message.NewMessage(watermill.NewUUID(), []byte(`{"order_id":`))
			msg.Metadata.Set(contracts.MetadataType, contracts.TypeReserveStock)
			msg.Metadata.Set(contracts.MetadataSchemaVersion, "1")
			return msg
		}, wantErr: contracts.ErrUndecodable, permanent: true, outcome: commandhandler.OutcomeUndecodable},
		{name: "crash after commit", crash: true, dispatch: true, exits: 1, outcome: commandhandler.OutcomeOK},
		{name: "no crash after a duplicate", crash: true, duplicate: true, dispatch: true, outcome: commandhandler.OutcomeDuplicate},
		{name: "no crash after a failure", crash: true, result: errTransient, wantErr: errTransient, dispatch: true, outcome: commandhandler.OutcomeFailed},
		{name: "own database full is unavailable, not the message's fault", result: errDiskFull, wantErr: errDiskFull, unavailable: true, dispatch: true, outcome: commandhandler.OutcomeFailed},
		// As the order API answers 503 for it: a lock held past the busy
		// timeout ends when its holder commits, and must not spend the
		// message's attempts.
		{name: "own database locked past the busy timeout is unavailable", result: errLocked, wantErr: errLocked, unavailable: true, dispatch: true, outcome: commandhandler.OutcomeFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			exits := 0
			reg, err := faults.New(faults.Config{Flags: faults.ServiceFlags("inventory"), Exit: func(int) { exits++ }})
			if err != nil {
				t.Fatal(err)
			}
			if err := reg.Set(faults.CrashAfterCommit, boolText(tc.crash)); err != nil {
				t.Fatal(err)
			}
			reader := sdkmetric.NewManualReader()
			meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
			var got struct {
				id string
				m  contracts.Message
			}
			h, err := commandhandler.New(commandhandler.Config{
				Topic: contracts.TopicInventoryCommands,
				Dispatch: func(_ context.Context, _ *slog.Logger, id string, m contracts.Message) (bool, error) {
					got.id, got.m = id, m
					return tc.duplicate, tc.result
				},
				Permanent: func(err error) bool { return errors.Is(err, errInvalid) },
				Faults:    reg, Logger: slog.New(slog.DiscardHandler), Meter: meter,
			})
			if err != nil {
				t.Fatal(err)
			}
			msg := encode(t, contracts.ReserveStock{OrderID: "o-1", Items: []contracts.Item{{SKU: "SKU-1", Quantity: 1}}})
			if tc.msg != nil {
				msg = tc.msg(t)
			}
			err = h.Handle(msg)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Errorf("error: got %v, want %v", err, tc.wantErr)
			}
			if gotPermanent := errors.Is(err, queue.ErrPermanent); gotPermanent != tc.permanent {
				t.Errorf("permanent: got %v, want %v (%v)", gotPermanent, tc.permanent, err)
			}
			if gotUnavailable := errors.Is(err, queue.ErrUnavailable); gotUnavailable != tc.unavailable {
				t.Errorf("unavailable: got %v, want %v (%v)", gotUnavailable, tc.unavailable, err)
			}
			if dispatched := got.m != nil; dispatched != tc.dispatch {
				t.Errorf("dispatched: got %v, want %v", dispatched, tc.dispatch)
			} else if dispatched {
				if r, ok := got.m.(contracts.ReserveStock); !ok || r.OrderID != "o-1" || got.id != msg.UUID {
					t.Errorf("dispatch: got %#v with id %q, want ReserveStock of o-1 with id %q", got.m, got.id, msg.UUID)
				}
			}
			if exits != tc.exits {
				t.Errorf("crash point exits: got %d, want %d", exits, tc.exits)
			}
			if n := handled(t, reader, tc.outcome); n != 1 {
				t.Errorf("orderflow.messages.handled{outcome=%s}: got %d, want 1", tc.outcome, n)
			}
		})
	}
}

// The type label of an undecodable message is its contract's type, or
// "unknown" for a type no contract has: made-up types sent to the queue
// must not each add a series (the SDK caps an instrument at 2,000, after
// which real types would be counted under an overflow series).
func TestUndecodableMessagesOfMadeUpTypesShareOneSeries(t *testing.T) {
	h, reader := meteredHandler(t, nil)
	undecodable := func(typ string) *message.Message {
		msg := message.NewMessage(watermill.NewUUID(), []byte(`{"order_id":`))
		if typ != "" {
			msg.Metadata.Set(contracts.MetadataType, typ)
		}
		msg.Metadata.Set(contracts.MetadataSchemaVersion, "1")
		return msg
	}
	for i := range 50 {
		_ = h.Handle(undecodable(fmt.Sprintf("made-up-%d", i)))
	}
	_ = h.Handle(undecodable(""))
	_ = h.Handle(undecodable(contracts.TypeReserveStock))

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "orderflow.messages.handled" {
				for _, dp := range sum.DataPoints {
					v, _ := dp.Attributes.Value("type")
					got[v.AsString()] += dp.Value
				}
			}
		}
	}
	want := map[string]int64{commandhandler.UnknownTypeLabel: 51, contracts.TypeReserveStock: 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("orderflow.messages.handled by type: got %v, want %v", got, want)
	}
}

// A failure is returned, not logged: the router's retries write the one
// record of it (with the order id, message id, type and error), so a
// record here would say it twice.
func TestFailuresAreReturnedNotLogged(t *testing.T) {
	reg, err := faults.New(faults.Config{Flags: faults.ServiceFlags("inventory")})
	if err != nil {
		t.Fatal(err)
	}
	var logs logtest.Buffer
	h, err := commandhandler.New(commandhandler.Config{
		Topic: contracts.TopicInventoryCommands,
		Dispatch: func(context.Context, *slog.Logger, string, contracts.Message) (bool, error) {
			return false, errTransient
		},
		Faults: reg, Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	undecodable := message.NewMessage(watermill.NewUUID(), []byte(`{"order_id":`))
	undecodable.Metadata.Set(contracts.MetadataType, contracts.TypeReserveStock)
	undecodable.Metadata.Set(contracts.MetadataSchemaVersion, "1")
	for _, msg := range []*message.Message{
		encode(t, contracts.ReserveStock{OrderID: "o-1", Items: []contracts.Item{{SKU: "SKU-1", Quantity: 1}}}),
		undecodable,
	} {
		if err := h.Handle(msg); err == nil {
			t.Fatalf("Handle(%s): got nil, want an error", msg.Payload)
		}
	}
	if recs := logs.Records(t); len(recs) != 0 {
		t.Errorf("records: got %v, want none", recs)
	}
}

// meteredHandler is an inventory handler whose dispatch handles anything,
// timed by clock (nil: time.Now), with its metrics read through the
// returned reader.
func meteredHandler(t *testing.T, clock func() time.Time) (*commandhandler.Handler, *sdkmetric.ManualReader) {
	t.Helper()
	reg, err := faults.New(faults.Config{Flags: faults.ServiceFlags("inventory")})
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	h, err := commandhandler.New(commandhandler.Config{
		Topic:    contracts.TopicInventoryCommands,
		Dispatch: func(context.Context, *slog.Logger, string, contracts.Message) (bool, error) { return false, nil },
		Faults:   reg, Logger: slog.New(slog.DiscardHandler),
		Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test"),
		Clock: clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h, reader
}

func boolText(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// handled sums orderflow.messages.handled for outcome.
func handled(t *testing.T, r *sdkmetric.ManualReader, outcome string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if m.Name != "orderflow.messages.handled" || !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				if v, _ := dp.Attributes.Value("outcome"); v.AsString() == outcome {
					n += dp.Value
				}
			}
		}
	}
	return n
}

func TestNewRejectsAnIncompleteConfig(t *testing.T) {
	reg, err := faults.New(faults.Config{Flags: faults.CommonFlags()})
	if err != nil {
		t.Fatal(err)
	}
	dispatch := func(context.Context, *slog.Logger, string, contracts.Message) (bool, error) { return false, nil }
	logger := slog.New(slog.DiscardHandler)
	for name, cfg := range map[string]commandhandler.Config{
		"no topic":    {Dispatch: dispatch, Faults: reg, Logger: logger},
		"no dispatch": {Topic: "t", Faults: reg, Logger: logger},
		"no faults":   {Topic: "t", Dispatch: dispatch, Logger: logger},
		"no logger":   {Topic: "t", Dispatch: dispatch, Faults: reg},
	} {
		if _, err := commandhandler.New(cfg); err == nil {
			t.Errorf("%s: got nil error, want one", name)
		}
	}
}

// orderflow.handler.duration is in seconds: its buckets must resolve the
// milliseconds a command takes (the SDK's default boundaries, 0, 5, 10 …
// 10000, would put every handler in the first bucket, le=5 s).
func TestHandlerDurationBucketsAreSeconds(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	calls := 0
	h, reader := meteredHandler(t, func() time.Time {
		calls++
		if calls == 1 {
			return t0 // the start of the handler
		}
		return t0.Add(2 * time.Millisecond)
	})
	if err := h.Handle(encode(t, contracts.ReserveStock{OrderID: "o-1", Items: []contracts.Item{{SKU: "SKU-1", Quantity: 1}}})); err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "orderflow.handler.duration" {
				continue
			}
			if m.Unit != "s" {
				t.Errorf("unit: got %q, want s", m.Unit)
			}
			hist, ok := m.Data.(metricdata.Histogram[float64])
			if !ok || len(hist.DataPoints) != 1 {
				t.Fatalf("data: got %#v, want one histogram data point", m.Data)
			}
			dp := hist.DataPoints[0]
			found = true
			if dp.Count != 1 || dp.Sum != 0.002 {
				t.Errorf("observation: got count %d sum %v, want 1 of 0.002 s", dp.Count, dp.Sum)
			}
			// The bucket holding the 2 ms: its upper bound must be below 5 ms.
			for i, n := range dp.BucketCounts {
				if n == 0 {
					continue
				}
				if i >= len(dp.Bounds) || dp.Bounds[i] >= 0.005 {
					t.Errorf("2 ms landed in bucket %d of bounds %v; want one whose upper bound is below 5 ms", i, dp.Bounds)
				}
			}
		}
	}
	if !found {
		t.Fatal("no orderflow.handler.duration recorded")
	}
}
