// Package faults is the failure-injection switchboard of an orderflow
// service: a registry of named, typed flags (rates, durations, strings,
// bools) with descriptions, defaults and validation, set from environment
// variables at start-up and changed at run time through the admin API.
//
// A service builds one Registry, passes it to the code that injects faults
// and to the admin server, and asks it questions in its handlers:
//
//	reg, err := faults.New(faults.Config{Flags: faults.ServiceFlags("payment")})
//	err = reg.LoadEnv("PAYMENT_", os.LookupEnv)
//	...
//	if reg.Chance(faults.PaymentDeclineRate) { decline }
//	if err := reg.Sleep(ctx, faults.HandlerLatency); err != nil { return err }
//	reg.CrashPoint(ctx, faults.CrashMidHandler) // exits the process when on
//
// Every method is safe for concurrent use. The registry keeps no global
// state: tests build their own with a fixed random source and a fake exit.
package faults

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/orderflow/orderflow/pkg/plaintext"
)

// Type is the kind of value a flag holds.
type Type string

// Flag types.
const (
	// TypeRate is a probability in [0, 1], e.g. "0.25".
	TypeRate Type = "rate"
	// TypeDuration is a non-negative Go duration, e.g. "250ms", "2s", "0".
	TypeDuration Type = "duration"
	// TypeString is free text (trimmed; no control characters), e.g. a
	// comma-separated SKU list.
	TypeString Type = "string"
	// TypeBool is "true" or "false" (also 1/0, t/f as strconv.ParseBool).
	TypeBool Type = "bool"
)

// Errors returned by Set, Define and friends. They are matched with
// errors.Is; the admin API turns ErrUnknownFlag into 404 and
// ErrInvalidValue (a *ValueError) into 400.
var (
	ErrUnknownFlag  = errors.New("unknown fault flag")
	ErrInvalidValue = errors.New("invalid fault flag value")
	ErrWrongType    = errors.New("fault flag has another type")
)

// ExitCode is the status a crash point exits with by default, so that a
// supervisor (or a test harness) can tell an injected crash from a failure.
const ExitCode = 3

// DefaultFlushTimeout is Config.FlushTimeout's default: how long a crash
// point may wait for telemetry to be exported before the process exits.
const DefaultFlushTimeout = time.Second

// Spec describes one flag.
type Spec struct {
	// Name is the flag's snake_case name, e.g. "payment_decline_rate".
	// Its environment variable is the name in upper case (see EnvName).
	Name string
	// Type is the kind of value.
	Type Type
	// Description says what the flag does, for the admin API and --help.
	Description string
	// Default is the initial value in the flag's text form; "" means the
	// zero value of the type (0, 0s, "", false).
	Default string
	// Check, when set, validates a parsed value further (a bool, a
	// float64 rate, a time.Duration or a string). Its error's text is the
	// Problem of the ValueError Set returns: words for whoever sent the
	// value ("must not exceed 10m").
	Check func(v any) error
}

// EnvName is the environment variable that sets the flag at start-up:
// the name in upper case, e.g. PAYMENT_DECLINE_RATE.
func (s Spec) EnvName() string { return strings.ToUpper(s.Name) }

// EnvNames are the environment variables LoadEnv reads for the flag with
// prefix (such as "PAYMENT_"), the one that wins first: PREFIX+EnvName,
// then EnvName; only EnvName when it starts with the prefix already
// (PAYMENT_DECLINE_RATE, not PAYMENT_PAYMENT_DECLINE_RATE) or the prefix
// is empty.
func (s Spec) EnvNames(prefix string) []string {
	env := s.EnvName()
	if prefix == "" || strings.HasPrefix(env, prefix) {
		return []string{env}
	}
	return []string{prefix + env, env}
}

// Config configures New.
type Config struct {
	// Flags are defined in this order; more can be added with Define.
	Flags []Spec
	// Rand returns a uniform number in [0, 1); Chance compares it with a
	// rate. It must be safe for concurrent use. Default math/rand/v2.
	Rand func() float64
	// Exit ends the process at a crash point. Default os.Exit.
	Exit func(code int)
	// ExitCode is what crash points pass to Exit. Default ExitCode (3).
	ExitCode int
	// Flush, when set, is called at a crash point after its record is
	// logged and before Exit, with a context that ends after
	// FlushTimeout; it must return by then. It exports the telemetry the
	// process holds (telemetry.Telemetry.ForceFlush): spans of work
	// already finished, of any order, that a batching exporter sends only
	// every few seconds and the exit would lose. It must do nothing else
	// (no commit, ack or publish), so that the crash leaves the databases
	// and the queue as a real one would; its error is logged. The
	// process's other goroutines run on meanwhile, as if the crash came
	// that much later. Default none.
	Flush func(ctx context.Context) error
	// FlushTimeout bounds Flush. Default DefaultFlushTimeout.
	FlushTimeout time.Duration
	// Logger receives a record for every change and before every
	// injected crash. Default: no logging.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.Exit == nil {
		c.Exit = os.Exit
	}
	if c.ExitCode == 0 {
		c.ExitCode = ExitCode
	}
	if c.FlushTimeout <= 0 {
		c.FlushTimeout = DefaultFlushTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Registry holds the flags of one process.
type Registry struct {
	cfg Config

	mu      sync.RWMutex
	flags   map[string]*flag
	order   []string
	watches map[string][]func(value string) error
	// envPrefix is LoadEnv's prefix: the variable a State names is the
	// one that wins for this service.
	envPrefix string
}

type flag struct {
	spec  Spec
	value any    // bool, float64, time.Duration or string
	text  string // canonical text of value
	def   any
	src   string // "default", "env" or "api"
	env   string // with src "env": the variable that set it
	set   time.Time
}

// New returns a registry holding cfg.Flags at their defaults.
func New(cfg Config) (*Registry, error) {
	cfg.setDefaults()
	r := &Registry{cfg: cfg, flags: map[string]*flag{}, watches: map[string][]func(string) error{}}
	for _, s := range cfg.Flags {
		if err := r.Define(s); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Define adds a flag. It fails if the name is taken, not snake_case, the
// type unknown or the default invalid.
func (r *Registry) Define(s Spec) error {
	if !validName(s.Name) {
		return fmt.Errorf("define fault flag %q: name must be snake_case ([a-z0-9_], starting with a letter)", s.Name)
	}
	switch s.Type {
	case TypeRate, TypeDuration, TypeString, TypeBool:
	default:
		return fmt.Errorf("define fault flag %q: unknown type %q", s.Name, s.Type)
	}
	v, text, err := parse(s, s.Default)
	if err != nil {
		return fmt.Errorf("define fault flag %q: default: %w", s.Name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.flags[s.Name]; ok {
		return fmt.Errorf("define fault flag %q: already defined", s.Name)
	}
	r.flags[s.Name] = &flag{spec: s, value: v, text: text, def: v, src: "default"}
	r.order = append(r.order, s.Name)
	slices.Sort(r.order)
	return nil
}

func validName(n string) bool {
	if n == "" || n[0] < 'a' || n[0] > 'z' {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// ValueError is the error of a value a flag does not take. It matches
// ErrInvalidValue.
type ValueError struct {
	// Flag is the flag's name.
	Flag string
	// Problem says what is wrong with the value, in words for whoever
	// sent it ("rate must be between 0 and 1, got 2").
	Problem string
}

// Error reads "invalid fault flag value: FLAG: PROBLEM".
func (e *ValueError) Error() string {
	return fmt.Sprintf("%v: %s: %s", ErrInvalidValue, e.Flag, e.Problem)
}

// Unwrap returns ErrInvalidValue.
func (e *ValueError) Unwrap() error { return ErrInvalidValue }

// invalid returns the ValueError of flag s, its problem formatted.
func invalid(s Spec, format string, args ...any) error {
	return &ValueError{Flag: s.Name, Problem: fmt.Sprintf(format, args...)}
}

// MaxValueLength is the longest value text a flag takes, in bytes: a
// value is logged when it is set and shown on every page of the console,
// and a list of SKUs to report out of stock needs far less.
const MaxValueLength = 4 << 10

// parse turns text into the flag's typed value and its canonical text.
// Text longer than MaxValueLength is refused. Spaces around text are
// dropped; invalid UTF-8 and control or
// bidirectional formatting characters (plaintext.Unsafe) within it are
// refused, for every type: a string flag would store them,
// and the console and the logs show them (an ANSI escape as a terminal
// command).
func parse(s Spec, text string) (any, string, error) {
	text = strings.TrimSpace(text)
	if len(text) > MaxValueLength {
		return nil, "", invalid(s, "must be at most %d bytes long, got %d", MaxValueLength, len(text))
	}
	if !utf8.ValidString(text) {
		return nil, "", invalid(s, "is not valid UTF-8")
	}
	if i := strings.IndexFunc(text, plaintext.Unsafe); i >= 0 {
		r, _ := utf8.DecodeRuneInString(text[i:])
		return nil, "", invalid(s, "must not contain control or bidirectional formatting characters, got %U at byte %d", r, i)
	}
	var v any
	switch s.Type {
	case TypeRate:
		f := 0.0
		if text != "" {
			var err error
			f, err = strconv.ParseFloat(text, 64)
			if err != nil {
				return nil, "", invalid(s, "%q is not a number", text)
			}
		}
		if math.IsNaN(f) || f < 0 || f > 1 {
			return nil, "", invalid(s, "rate must be between 0 and 1, got %s", text)
		}
		if f == 0 {
			f = 0 // "-0" parses as negative zero, which formats as "-0"
		}
		v = f
	case TypeDuration:
		d := time.Duration(0)
		if text != "" && text != "0" {
			var err error
			d, err = time.ParseDuration(text)
			if err != nil {
				return nil, "", invalid(s, "%q is not a duration such as 250ms or 2s", text)
			}
		}
		if d < 0 {
			return nil, "", invalid(s, "duration must not be negative, got %s", text)
		}
		v = d
	case TypeBool:
		b := false
		if text != "" {
			var err error
			b, err = strconv.ParseBool(text)
			if err != nil {
				return nil, "", invalid(s, "%q is not true or false", text)
			}
		}
		v = b
	case TypeString:
		v = text
	}
	if s.Check != nil {
		if err := s.Check(v); err != nil {
			return nil, "", invalid(s, "%v", err)
		}
	}
	return v, format(v), nil
}

func format(v any) string {
	switch v := v.(type) {
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case time.Duration:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	case string:
		return v
	}
	return fmt.Sprint(v)
}

// Set changes a flag at run time from its text form (the admin API's
// PUT /faults/{name}). Functions registered with OnChange run after the
// change, outside the registry's lock; if any fails (the action a flag
// sets off, such as poison's message), Set returns its error, wrapped,
// and the flag keeps its new value (or what the function set it to).
func (r *Registry) Set(name, value string) error {
	return r.set(name, value, "api", "")
}

func (r *Registry) set(name, value, src, env string) error {
	r.mu.Lock()
	f, ok := r.flags[name]
	if !ok {
		r.mu.Unlock()
		return unknownFlag(name)
	}
	v, text, err := parse(f.spec, value)
	if err != nil {
		r.mu.Unlock()
		return err
	}
	old := f.text
	f.value, f.text, f.src, f.env, f.set = v, text, src, env, time.Now()
	watches := slices.Clone(r.watches[name])
	r.mu.Unlock()

	r.cfg.Logger.Info("fault flag set", slog.String("flag", name), slog.String("value", text),
		slog.String("previous", old), slog.String("source", src))
	var errs []error
	for _, w := range watches {
		if err := w(text); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s set to %s, then: %w", name, text, err)
	}
	return nil
}

// Reset puts a flag back to its default.
func (r *Registry) Reset(name string) error {
	r.mu.RLock()
	f, ok := r.flags[name]
	var def string
	if ok {
		def = format(f.def)
	}
	r.mu.RUnlock()
	if !ok {
		return unknownFlag(name)
	}
	return r.set(name, def, "default", "")
}

// OnChange registers fn to be called with the new text value after every
// Set, Reset or LoadEnv of flag name. fn runs on the caller's goroutine,
// outside the registry's lock, so it may call Set itself. Its error is
// returned by the Set, Reset or LoadEnv that called it (so that the admin
// API answers with it); the flag's change stands.
func (r *Registry) OnChange(name string, fn func(value string) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.flags[name]; !ok {
		return unknownFlag(name)
	}
	r.watches[name] = append(r.watches[name], fn)
	return nil
}

// LoadEnv sets every flag whose environment variable is present, through
// lookup (os.LookupEnv in production). With a prefix such as "PAYMENT_",
// PAYMENT_HANDLER_LATENCY takes precedence over HANDLER_LATENCY, so one
// environment can hold different values for several services; a flag whose
// variable already starts with the prefix (PAYMENT_DECLINE_RATE) is read
// once. A variable set empty counts as unset. Every invalid value is
// reported; valid ones are applied anyway.
func (r *Registry) LoadEnv(prefix string, lookup func(string) (string, bool)) error {
	r.mu.Lock()
	r.envPrefix = prefix
	r.mu.Unlock()
	var errs []error
	for _, s := range r.Specs() {
		for _, n := range s.EnvNames(prefix) {
			// Set empty counts as unset, as for every other variable of
			// the services (a compose file's ${PAYMENT_HANDLER_LATENCY:-}
			// must not hide HANDLER_LATENCY).
			v, ok := lookup(n)
			if !ok || v == "" {
				continue
			}
			if err := r.set(s.Name, v, "env", n); err != nil {
				errs = append(errs, fmt.Errorf("environment variable %s: %w", n, err))
			}
			break
		}
	}
	return errors.Join(errs...)
}

// Specs lists the flags' descriptions, sorted by name.
func (r *Registry) Specs() []Spec {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Spec, 0, len(r.order))
	for _, n := range r.order {
		out = append(out, r.flags[n].spec)
	}
	return out
}

// State is one flag as the admin API shows it.
type State struct {
	Name        string `json:"name"`
	Type        Type   `json:"type"`
	Value       string `json:"value"`
	Default     string `json:"default"`
	Description string `json:"description"`
	// Env is the environment variable that set the value (Source "env"),
	// otherwise the one that would win at the next start: with LoadEnv's
	// prefix, PAYMENT_HANDLER_LATENCY before HANDLER_LATENCY.
	Env string `json:"env"`
	// Source is where the value comes from: "default", "env" or "api".
	Source string `json:"source"`
	// UpdatedAt is when the value was last set; absent for defaults.
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

// Snapshot returns every flag's state, sorted by name.
func (r *Registry) Snapshot() []State {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]State, 0, len(r.order))
	for _, n := range r.order {
		out = append(out, r.state(r.flags[n]))
	}
	return out
}

// unknownFlag is the error for a flag this registry does not hold; when
// another service's registry holds it (a payment flag sent to inventory's
// admin API), the error says whose it is.
func unknownFlag(name string) error {
	for _, service := range []string{"order", "inventory", "payment", "shipping"} {
		for _, spec := range ServiceFlags(service) {
			if spec.Name == name && !slices.ContainsFunc(CommonFlags(), func(c Spec) bool { return c.Name == name }) {
				return fmt.Errorf("%w %q (a flag of the %s service: set it through %s's admin API)", ErrUnknownFlag, name, service, service)
			}
		}
	}
	return fmt.Errorf("%w %q", ErrUnknownFlag, name)
}

// Get returns one flag's state.
func (r *Registry) Get(name string) (State, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	f, ok := r.flags[name]
	if !ok {
		return State{}, unknownFlag(name)
	}
	return r.state(f), nil
}

func (r *Registry) state(f *flag) State {
	s := State{
		Name: f.spec.Name, Type: f.spec.Type, Value: f.text, Default: format(f.def),
		Description: f.spec.Description, Env: f.env, Source: f.src,
	}
	if f.src != "env" {
		s.Env = f.spec.EnvNames(r.envPrefix)[0]
	}
	if !f.set.IsZero() {
		t := f.set.UTC()
		s.UpdatedAt = &t
	}
	return s
}

// Require returns an error unless the registry holds flag name of type
// typ (ErrUnknownFlag, ErrWrongType): what a constructor checks of each
// flag its component reads, so that a missing flag fails the start
// instead of panicking (Rate, Duration…) in the first call that reads it.
func (r *Registry) Require(name string, typ Type) error {
	st, err := r.Get(name)
	if err != nil {
		return err
	}
	if st.Type != typ {
		return fmt.Errorf("%w: %q is a %s, not a %s", ErrWrongType, name, st.Type, typ)
	}
	return nil
}

// value returns the typed value of a flag of type want. An unknown flag or
// one of another type is a programming error: it panics, so that a typo
// fails the first test that reaches it instead of silently injecting
// nothing.
func (r *Registry) value(name string, want Type) any {
	r.mu.RLock()
	f, ok := r.flags[name]
	var v any
	var typ Type
	if ok {
		v, typ = f.value, f.spec.Type
	}
	r.mu.RUnlock()
	if !ok {
		panic(fmt.Sprintf("faults: %v %q", ErrUnknownFlag, name))
	}
	if typ != want {
		panic(fmt.Sprintf("faults: %v: %q is a %s, not a %s", ErrWrongType, name, typ, want))
	}
	return v
}

// Rate returns a rate flag's value. It panics if the flag is not a
// defined rate (a programming error).
func (r *Registry) Rate(name string) float64 { return r.value(name, TypeRate).(float64) }

// Duration returns a duration flag's value; it panics like Rate.
func (r *Registry) Duration(name string) time.Duration {
	return r.value(name, TypeDuration).(time.Duration)
}

// String returns a string flag's value; it panics like Rate.
func (r *Registry) String(name string) string { return r.value(name, TypeString).(string) }

// Bool returns a bool flag's value; it panics like Rate.
func (r *Registry) Bool(name string) bool { return r.value(name, TypeBool).(bool) }

// List splits a string flag on commas and returns its non-empty, trimmed
// elements; it panics like Rate.
func (r *Registry) List(name string) []string {
	var out []string
	for _, s := range strings.Split(r.String(name), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Chance reports true with the probability held by rate flag name: never
// at 0, always at 1.
func (r *Registry) Chance(name string) bool {
	p := r.Rate(name)
	switch {
	case p <= 0:
		return false
	case p >= 1:
		return true
	}
	return r.cfg.Rand() < p
}

// Sleep waits for the duration held by flag name, or until ctx ends, in
// which case it returns ctx's error. A zero duration returns at once.
func (r *Registry) Sleep(ctx context.Context, name string) error {
	d := r.Duration(name)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// EventCrashPoint is the span event of a crash point that fired
// (CrashPoint), with the flag's name as fault.flag.
const EventCrashPoint = "crash point"

// CrashPoint ends the process (Config.Exit with Config.ExitCode) when bool
// flag name is on, after logging it (with ctx: the record carries its
// trace), ending the span in ctx as failed with an EventCrashPoint event
// (so that the crashed attempt shows in its trace: a span not ended is
// never exported) and flushing telemetry (Config.Flush, at most
// Config.FlushTimeout): the calling goroutine does nothing else before the
// exit. With a fake Exit that returns (in tests), CrashPoint returns true
// when it fired, so the caller can stop as the process would have.
func (r *Registry) CrashPoint(ctx context.Context, name string) bool {
	if !r.Bool(name) {
		return false
	}
	r.cfg.Logger.WarnContext(ctx, "fault injection: crash point reached, exiting",
		slog.String("flag", name), slog.Int("exit_code", r.cfg.ExitCode))
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent(EventCrashPoint, trace.WithAttributes(attribute.String("fault.flag", name)))
		span.SetStatus(codes.Error, "crash point "+name+" reached: the process exits")
		span.End()
	}
	if r.cfg.Flush != nil {
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.FlushTimeout)
		err := r.cfg.Flush(ctx)
		cancel()
		if err != nil {
			r.cfg.Logger.Warn("fault injection: telemetry not flushed before the crash", slog.Any("error", err))
		}
	}
	r.cfg.Exit(r.cfg.ExitCode)
	return true
}
