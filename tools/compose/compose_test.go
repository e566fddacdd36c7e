package compose

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// Services built from the Dockerfile, with their published ports.
var appPorts = map[string][]uint32{
	"order":     {8080, 8084},
	"inventory": {8081},
	"payment":   {8082},
	"shipping":  {8083},
	"console":   {8090},
}

// The four services of the saga (the console is a client).
var sagaServices = []string{"order", "inventory", "payment", "shipping"}

const (
	sqliteQueueURL   = "sqlite:///queue/queue.db"
	postgresQueueURL = "postgres://orderflow:orderflow@postgres:5432/orderflow?sslmode=disable"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
		t.Fatalf("repository root %s: %v", root, err)
	}
	return root
}

// load reads docker-compose.yml as `docker compose` would, with env as the
// whole environment (never the test's own, so that a QUEUE_URL set in the
// shell cannot change the outcome) and envFiles as --env-file.
func load(t *testing.T, env []string, envFiles []string, profiles ...string) *types.Project {
	t.Helper()
	root := repoRoot(t)
	opts := []cli.ProjectOptionsFn{
		cli.WithWorkingDirectory(root),
		cli.WithEnv(env),
	}
	if len(envFiles) > 0 {
		// The order of the docker CLI: env files first, then profiles
		// (which fall back to COMPOSE_PROFILES from them). Without
		// --env-file the CLI would read ./.env, which a developer may
		// have: left out here.
		opts = append(opts, cli.WithEnvFiles(envFiles...), cli.WithDotEnv)
	}
	opts = append(opts, cli.WithDefaultProfiles(profiles...), cli.WithConsistency(true))
	o, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := o.LoadProject(ctx)
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return p
}

func env(t *testing.T, s types.ServiceConfig, key string) string {
	t.Helper()
	v, ok := s.Environment[key]
	if !ok || v == nil {
		t.Errorf("%s: environment lacks %s", s.Name, key)
		return ""
	}
	return *v
}

func enabled(p *types.Project) []string {
	names := p.ServiceNames()
	slices.Sort(names)
	return names
}

func TestDefaultProject(t *testing.T) {
	p := load(t, nil, nil)
	if p.Name != "orderflow" {
		t.Errorf("project name %q, want orderflow", p.Name)
	}
	want := []string{"console", "inventory", "jaeger", "order", "payment", "shipping"}
	if got := enabled(p); !slices.Equal(got, want) {
		t.Errorf("services %v, want %v (postgres only with its profile)", got, want)
	}
	pg, ok := p.DisabledServices["postgres"]
	if !ok || !slices.Equal(pg.Profiles, []string{"postgres"}) {
		t.Errorf("postgres: disabled %v, profiles %v; want disabled, [postgres]", ok, pg.Profiles)
	}
	root := repoRoot(t)

	for name, ports := range appPorts {
		s, err := p.GetService(name)
		if err != nil {
			t.Fatal(err)
		}
		// Built from the one Dockerfile, parameterised by SERVICE.
		if s.Build == nil || s.Build.Context != root || s.Build.Dockerfile != "Dockerfile" {
			t.Errorf("%s: build %+v, want context %s, Dockerfile", name, s.Build, root)
		} else if a := s.Build.Args["SERVICE"]; a == nil || *a != name {
			t.Errorf("%s: build arg SERVICE = %v, want %s", name, a, name)
		}
		// Ports published on loopback only.
		var published []uint32
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s: port %d published on %q, want 127.0.0.1", name, port.Target, port.HostIP)
			}
			if port.Published != "" && port.Published != itoa(port.Target) {
				t.Errorf("%s: port %d published as %s, want the same number", name, port.Target, port.Published)
			}
			published = append(published, port.Target)
		}
		if !slices.Equal(published, ports) {
			t.Errorf("%s: ports %v, want %v", name, published, ports)
		}
		// Listens on every interface inside its container, on its port.
		if got, want := env(t, s, "HTTP_ADDR"), "0.0.0.0:"+itoa(ports[0]); got != want {
			t.Errorf("%s: HTTP_ADDR %q, want %q", name, got, want)
		}
		// The shared queue volume, and the SQLite queue on it by default.
		if got := env(t, s, "QUEUE_URL"); got != sqliteQueueURL {
			t.Errorf("%s: QUEUE_URL %q, want %q", name, got, sqliteQueueURL)
		}
		if !hasVolume(s, "queue", "/queue") {
			t.Errorf("%s: volumes %+v, want queue on /queue", name, s.Volumes)
		}
		// A health check with the static healthcheck binary of the image.
		hc := s.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) != 3 || hc.Test[0] != "CMD" || hc.Test[1] != "/usr/local/bin/healthcheck" ||
			hc.Test[2] != "http://127.0.0.1:"+itoa(ports[0])+"/healthz" {
			t.Errorf("%s: healthcheck %+v, want CMD /usr/local/bin/healthcheck http://127.0.0.1:%d/healthz", name, hc, ports[0])
		} else if hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil {
			t.Errorf("%s: healthcheck without interval, timeout or retries", name)
		}
	}

	for _, name := range sagaServices {
		s, _ := p.GetService(name)
		if got := env(t, s, "OTEL_EXPORTER_OTLP_ENDPOINT"); got != "http://jaeger:4318" {
			t.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT %q, want http://jaeger:4318", name, got)
		}
		if got := env(t, s, "DATA_DIR"); got != "/data" {
			t.Errorf("%s: DATA_DIR %q, want /data", name, got)
		}
		// One P per process by default, as go tool task run does.
		if got := env(t, s, "GOMAXPROCS"); got != "1" {
			t.Errorf("%s: GOMAXPROCS %q, want 1", name, got)
		}
		if !hasVolume(s, name+"-data", "/data") {
			t.Errorf("%s: volumes %+v, want %s-data on /data (its own database)", name, s.Volumes, name)
		}
		if d, ok := s.DependsOn["jaeger"]; !ok || d.Condition != types.ServiceConditionStarted {
			t.Errorf("%s: depends_on jaeger %+v, want service_started", name, d)
		}
		if d, ok := s.DependsOn["postgres"]; ok && (d.Required || d.Condition != types.ServiceConditionHealthy) {
			t.Errorf("%s: depends_on postgres %+v, want healthy and not required", name, d)
		}
	}
	order, _ := p.GetService("order")
	if got := env(t, order, "ADMIN_ADDR"); got != "0.0.0.0:8084" {
		t.Errorf("order: ADMIN_ADDR %q, want 0.0.0.0:8084 (the console reaches it over the compose network)", got)
	}

	console, _ := p.GetService("console")
	for key, want := range map[string]string{
		"ORDER_URL": "http://order:8080", "ORDER_ADMIN_URL": "http://order:8084", "INVENTORY_URL": "http://inventory:8081",
		"PAYMENT_URL": "http://payment:8082", "SHIPPING_URL": "http://shipping:8083", "JAEGER_UI_URL": "http://127.0.0.1:16686",
	} {
		if got := env(t, console, key); got != want {
			t.Errorf("console: %s %q, want %q", key, got, want)
		}
	}
	// Each service answers to the name the console calls it by (its
	// servers refuse other names in Host, against DNS rebinding).
	for _, name := range sagaServices {
		s, _ := p.GetService(name)
		if got := strings.Split(env(t, s, "ALLOWED_HOSTS"), ","); !slices.Contains(got, name) {
			t.Errorf("%s: ALLOWED_HOSTS %q, want it to name %s, the console's host for it", name, got, name)
		}
	}
	for _, dep := range sagaServices {
		if d, ok := console.DependsOn[dep]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("console: depends_on %s %+v, want service_healthy", dep, d)
		}
	}

	jaeger, _ := p.GetService("jaeger")
	if !regexp.MustCompile(`^jaegertracing/jaeger:2\.\d+\.\d+$`).MatchString(jaeger.Image) {
		t.Errorf("jaeger image %q, want jaegertracing/jaeger:2.x.y", jaeger.Image)
	}
	var jports []uint32
	for _, port := range jaeger.Ports {
		if port.HostIP != "127.0.0.1" {
			t.Errorf("jaeger: port %d on %q, want 127.0.0.1", port.Target, port.HostIP)
		}
		jports = append(jports, port.Target)
	}
	if want := []uint32{16686, 4317, 4318}; !slices.Equal(jports, want) {
		t.Errorf("jaeger ports %v, want %v", jports, want)
	}
	if got := env(t, jaeger, "JAEGER_LISTEN_HOST"); got != "0.0.0.0" {
		t.Errorf("jaeger: JAEGER_LISTEN_HOST %q, want 0.0.0.0 (OTLP reachable from the services)", got)
	}

	for _, v := range []string{"queue", "order-data", "inventory-data", "payment-data", "shipping-data"} {
		if _, ok := p.Volumes[v]; !ok {
			t.Errorf("volume %s not declared", v)
		}
	}
}

// Every published host port is a variable with the documented default, so
// the whole system can move off ports the host already uses; the ports
// inside the containers (and the addresses the services reach each other
// on) stay the same.
func TestHostPortVariables(t *testing.T) {
	tests := []struct {
		variable string
		service  string
		target   uint32
		def      string
	}{
		{"ORDER_PORT", "order", 8080, "8080"},
		{"ORDER_ADMIN_PORT", "order", 8084, "8084"},
		{"INVENTORY_PORT", "inventory", 8081, "8081"},
		{"PAYMENT_PORT", "payment", 8082, "8082"},
		{"SHIPPING_PORT", "shipping", 8083, "8083"},
		{"CONSOLE_PORT", "console", 8090, "8090"},
		{"JAEGER_UI_PORT", "jaeger", 16686, "16686"},
		{"OTLP_GRPC_PORT", "jaeger", 4317, "4317"},
		{"OTLP_HTTP_PORT", "jaeger", 4318, "4318"},
		{"POSTGRES_PORT", "postgres", 5432, "15432"},
	}
	hostPort := func(t *testing.T, p *types.Project, service string, target uint32) string {
		t.Helper()
		s, err := p.GetService(service)
		if err != nil {
			t.Fatal(err)
		}
		for _, port := range s.Ports {
			if port.Target == target {
				return port.HostIP + ":" + port.Published
			}
		}
		t.Fatalf("%s: no port %d in %+v", service, target, s.Ports)
		return ""
	}
	var vars []string
	for i, tc := range tests {
		vars = append(vars, tc.variable+"="+strconv.Itoa(19300+i))
	}
	defaults := load(t, nil, nil, "postgres")
	moved := load(t, vars, nil, "postgres")
	for i, tc := range tests {
		if got, want := hostPort(t, defaults, tc.service, tc.target), "127.0.0.1:"+tc.def; got != want {
			t.Errorf("%s unset: %s port %d published on %s, want %s", tc.variable, tc.service, tc.target, got, want)
		}
		if got, want := hostPort(t, moved, tc.service, tc.target), "127.0.0.1:"+strconv.Itoa(19300+i); got != want {
			t.Errorf("%s=%d: %s port %d published on %s, want %s", tc.variable, 19300+i, tc.service, tc.target, got, want)
		}
	}
	// The console links to the Jaeger UI in the browser, on the host.
	console, _ := moved.GetService("console")
	if got, want := env(t, console, "JAEGER_UI_URL"), "http://127.0.0.1:19306"; got != want {
		t.Errorf("JAEGER_UI_PORT=19306: console JAEGER_UI_URL %q, want %q", got, want)
	}
	// Inside the compose network nothing moves.
	order, _ := moved.GetService("order")
	if got, want := env(t, order, "HTTP_ADDR"), "0.0.0.0:8080"; got != want {
		t.Errorf("ORDER_PORT set: order HTTP_ADDR %q, want %q", got, want)
	}
	if got, want := env(t, console, "ORDER_URL"), "http://order:8080"; got != want {
		t.Errorf("ORDER_PORT set: console ORDER_URL %q, want %q", got, want)
	}
}

// compose.postgres.env is the documented way to run on PostgreSQL: it turns
// the profile on and moves the queue of every service onto the server.
func TestPostgresEnvFile(t *testing.T) {
	p := load(t, nil, []string{filepath.Join(repoRoot(t), "compose.postgres.env")})
	want := []string{"console", "inventory", "jaeger", "order", "payment", "postgres", "shipping"}
	if got := enabled(p); !slices.Equal(got, want) {
		t.Fatalf("services %v, want %v", got, want)
	}
	for name := range appPorts {
		s, _ := p.GetService(name)
		if got := env(t, s, "QUEUE_URL"); got != postgresQueueURL {
			t.Errorf("%s: QUEUE_URL %q, want %q", name, got, postgresQueueURL)
		}
	}
	for _, name := range sagaServices {
		s, _ := p.GetService(name)
		if d, ok := s.DependsOn["postgres"]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("%s: depends_on postgres %+v, want service_healthy", name, d)
		}
	}
	pg, _ := p.GetService("postgres")
	if !strings.HasPrefix(pg.Image, "postgres:") {
		t.Errorf("postgres image %q", pg.Image)
	}
	// Over TCP (-h 127.0.0.1): on a fresh volume the image's entrypoint
	// first runs a server on the Unix socket alone, to initialise it, then
	// restarts it; a check over the socket passes during that first one,
	// and the services would connect to a server about to stop.
	if pg.HealthCheck == nil || len(pg.HealthCheck.Test) < 2 || pg.HealthCheck.Test[1] != "pg_isready" ||
		!strings.Contains(strings.Join(pg.HealthCheck.Test, " "), "-h 127.0.0.1") {
		t.Errorf("postgres healthcheck %+v, want pg_isready over TCP (-h 127.0.0.1)", pg.HealthCheck)
	}
	for _, port := range pg.Ports {
		if port.HostIP != "127.0.0.1" || port.Published != "15432" {
			t.Errorf("postgres: port %+v, want 127.0.0.1:15432", port)
		}
	}
	if !hasVolume(pg, "postgres-data", "/var/lib/postgresql/data") {
		t.Errorf("postgres volumes %+v", pg.Volumes)
	}
	for _, kv := range []string{"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} {
		if got := env(t, pg, kv); got != "orderflow" {
			t.Errorf("postgres: %s %q, want orderflow (the queue URL's)", kv, got)
		}
	}
}

// --profile postgres alone starts the server and keeps the SQLite queue;
// QUEUE_URL from the environment moves it (the same as the env file).
func TestProfileAndQueueURL(t *testing.T) {
	p := load(t, nil, nil, "postgres")
	if !slices.Contains(enabled(p), "postgres") {
		t.Fatal("--profile postgres did not enable postgres")
	}
	s, _ := p.GetService("order")
	if got := env(t, s, "QUEUE_URL"); got != sqliteQueueURL {
		t.Errorf("QUEUE_URL %q, want the SQLite default", got)
	}
	p = load(t, []string{"QUEUE_URL=" + postgresQueueURL, "COMPOSE_PROFILES=postgres"}, nil)
	for name := range appPorts {
		s, _ := p.GetService(name)
		if got := env(t, s, "QUEUE_URL"); got != postgresQueueURL {
			t.Errorf("%s: QUEUE_URL %q, want %q", name, got, postgresQueueURL)
		}
	}
}

// The Dockerfile builds what the compose file expects: one image per
// SERVICE with cgo, the healthcheck binary at /usr/local/bin/healthcheck,
// a non-root user; and each SERVICE names a main package.
func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	for _, want := range []string{
		"ARG SERVICE=order",
		"FROM ${GO_IMAGE} AS build",
		"ARG GO_IMAGE=golang:1.26-bookworm",
		"ARG RUNTIME_IMAGE=debian:bookworm-slim",
		"CGO_ENABLED=1",
		"ca-certificates",
		`"./services/${SERVICE}"`,
		"-o /out/healthcheck ./tools/cmd/healthcheck",
		"COPY . .",
		"USER orderflow:orderflow",
		`ENTRYPOINT ["/usr/local/bin/service"]`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if m := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(df, -1); len(m) == 0 || strings.HasPrefix(m[len(m)-1][1], "root") || strings.HasPrefix(m[len(m)-1][1], "0") {
		t.Errorf("the runtime stage must end on a non-root USER, got %v", m)
	}
	for name := range appPorts {
		main := filepath.Join(root, "services", name, "main.go")
		src, err := os.ReadFile(main)
		if err != nil {
			t.Errorf("SERVICE=%s: %v", name, err)
			continue
		}
		if !regexp.MustCompile(`(?m)^package main$`).Match(src) {
			t.Errorf("%s is not a main package", main)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "tools", "cmd", "healthcheck", "main.go")); err != nil {
		t.Errorf("healthcheck program: %v", err)
	}
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".git", "data", "bin"} {
		if !slices.Contains(strings.Split(string(ignore), "\n"), want) {
			t.Errorf(".dockerignore lacks %q", want)
		}
	}
}

func hasVolume(s types.ServiceConfig, source, target string) bool {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Source == source && v.Target == target {
			return true
		}
	}
	return false
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

// Every container's log is rotated: the services write a line per message
// handled, and Docker's default json-file driver keeps every line.
func TestLogsAreRotated(t *testing.T) {
	p := load(t, nil, nil, "postgres")
	for _, s := range p.Services {
		if s.Logging == nil {
			t.Errorf("%s: no logging options, want json-file rotated by max-size and max-file", s.Name)
			continue
		}
		if s.Logging.Driver != "json-file" || s.Logging.Options["max-size"] != "10m" || s.Logging.Options["max-file"] != "3" {
			t.Errorf("%s: logging %s %v, want json-file max-size 10m max-file 3", s.Name, s.Logging.Driver, s.Logging.Options)
		}
	}
	if len(p.Services) != 7 {
		t.Errorf("got %d services with the postgres profile, want 7", len(p.Services))
	}
}
