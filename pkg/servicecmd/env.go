package servicecmd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/orderflow/orderflow/pkg/crossorigin"
	"github.com/orderflow/orderflow/pkg/servicehost"
)

// EnvDefaults gives flags their defaults from environment variables read
// through a LookupFunc (unset or empty: the flag's own default) and
// collects the values that do not parse, so that a typo stops the service
// with an error naming the flag and the variable (`--concurrency
// (CONCURRENCY="ten"): …`) instead of running it with the default.
type EnvDefaults struct {
	lookup LookupFunc
	errs   []error
}

// NewEnvDefaults reads variables through lookup.
func NewEnvDefaults(lookup LookupFunc) *EnvDefaults { return &EnvDefaults{lookup: lookup} }

// String returns the variable's value, or def when it is unset or empty.
func (e *EnvDefaults) String(name, def string) string {
	if v, ok := e.lookup(name); ok && v != "" {
		return v
	}
	return def
}

// Int returns the variable name, the default of flag (without its
// dashes), as an int, or def (and records an error naming both when the
// value does not parse).
func (e *EnvDefaults) Int(flag, name string, def int) int {
	return parseEnv(e, flag, name, def, strconv.Atoi)
}

// Duration returns the variable name, the default of flag (without its
// dashes), as a time.Duration ("250ms", "1m"), or def (and records an
// error naming both when the value does not parse).
func (e *EnvDefaults) Duration(flag, name string, def time.Duration) time.Duration {
	return parseEnv(e, flag, name, def, time.ParseDuration)
}

// Err reports every variable that did not parse, or nil.
func (e *EnvDefaults) Err() error { return errors.Join(e.errs...) }

func parseEnv[T any](e *EnvDefaults, flag, name string, def T, parse func(string) (T, error)) T {
	v := e.String(name, "")
	if v == "" {
		return def
	}
	x, err := parse(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("--%s (%s=%q): %w", flag, name, v, err))
		return def
	}
	return x
}

// AllowedHosts checks hosts, the value of --allowed-hosts or
// ALLOWED_HOSTS, and puts it in crossorigin.ParseHosts's form (lower
// case, no blanks); its error names both.
func AllowedHosts(hosts *string) error {
	names, err := crossorigin.ParseHosts(*hosts)
	if err != nil {
		return fmt.Errorf("--allowed-hosts (ALLOWED_HOSTS): %w", err)
	}
	*hosts = strings.Join(names, ",")
	return nil
}

// SplitHosts is the list of names of hosts, checked by AllowedHosts.
func SplitHosts(hosts string) []string {
	if hosts == "" {
		return nil
	}
	return strings.Split(hosts, ",")
}

// LogLevel parses level, the value of --log-level or LOG_LEVEL, into l;
// its error names both.
func LogLevel(l *slog.Level, level string) error {
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("--log-level (LOG_LEVEL): %w", err)
	}
	return nil
}

// Range checks of parsed flags, for what 0 or a negative value cannot
// mean: the service refuses to start instead of quietly taking a default.
// Each error names the flag and its environment variable and the value.

// AtLeastOne reports n < 1 for flag (without its dashes) read from env.
func AtLeastOne(flag, env string, n int) error {
	if n >= 1 {
		return nil
	}
	return fmt.Errorf("--%s (%s) must be at least 1, got %d", flag, env, n)
}

// ListenAddr reports an address that cannot be listened on for flag
// (without its dashes) read from env: not HOST:PORT, or without a port.
// ":" (--http-addr=: from a script whose port variable was unset) would
// listen on every interface on a port nobody knows; a host left out
// (":8081", every interface) and port 0 (a free one, chosen on purpose)
// are taken.
func ListenAddr(flag, env, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--%s (%s) %q is not HOST:PORT (e.g. 127.0.0.1:8081, :8081): %w", flag, env, addr, err)
	}
	if port == "" {
		return fmt.Errorf("--%s (%s) %q has no port (e.g. 127.0.0.1:8081, :8081; 0 picks a free one)", flag, env, addr)
	}
	return nil
}

// NotEmpty reports flag (without its dashes) given empty (--data-dir=,
// from a script whose variable was unset), which the service would
// otherwise quietly take for the default. Its variable set empty counts
// as unset, as every variable's does.
func NotEmpty(flag, env, value string) error {
	if value != "" {
		return nil
	}
	return fmt.Errorf("--%s (%s) is empty; leave it out for the default", flag, env)
}

// Positive reports d <= 0 for flag (without its dashes) read from env.
func Positive(flag, env string, d time.Duration) error {
	if d > 0 {
		return nil
	}
	return fmt.Errorf("--%s (%s) must be positive, got %s", flag, env, d)
}

// DedupRetention reports a --dedup-retention under
// servicehost.MinDedupRetention.
func DedupRetention(d time.Duration) error {
	if err := servicehost.CheckDedupRetention(d); err != nil {
		return fmt.Errorf("--dedup-retention (DEDUP_RETENTION) %w", err)
	}
	return nil
}

// NotNegative reports d < 0 for flag (without its dashes) read from env,
// whose 0 has a meaning of its own.
func NotNegative(flag, env string, d time.Duration) error {
	if d >= 0 {
		return nil
	}
	return fmt.Errorf("--%s (%s) must not be negative, got %s", flag, env, d)
}
