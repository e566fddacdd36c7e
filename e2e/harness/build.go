// Package harness runs orderflow as it runs in production: the four service
// binaries as separate OS processes on one shared queue (a SQLite file in a
// temporary directory, or a fresh PostgreSQL schema), each with its own data
// directory and ports. A test starts a System, drives it through the order
// API and the services' admin APIs, kills and restarts processes, flips fault
// flags, receives the services' traces on an OTLP receiver of its own, and
// checks the invariants of docs/design.md §4 at the end.
//
//	bins := harness.MustBuild(t)                    // once per test binary
//	sys := harness.Start(t, bins, harness.Config{}) // four processes, ready
//	c := sys.Client()
//	o, err := c.PlaceOrder(ctx, harness.OrderRequest{Items: items})
//	err = c.SetFault(ctx, harness.PaymentService, "payment_decline_rate", 0.5)
//	err = sys.Service(harness.PaymentService).Kill() // SIGKILL
//	err = sys.Service(harness.PaymentService).Start(ctx)
//	final, err := c.WaitTerminal(ctx, o.ID)
//	sys.CheckInvariants(t, harness.Expect{Orders: 1})
//
// Every process's output goes to a log file in the system's directory; the
// tail of each is printed when the test fails.
package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Service names: the binaries, the service.name of their spans and their
// consumer groups.
const (
	OrderService     = "order"
	InventoryService = "inventory"
	PaymentService   = "payment"
	ShippingService  = "shipping"
)

// Services lists the four services in saga order.
var Services = []string{OrderService, InventoryService, PaymentService, ShippingService}

// Binaries are the built executables, by name: the four services and
// queuectl.
type Binaries struct {
	Dir string
}

// Path returns the executable of name ("order", …, "queuectl").
func (b Binaries) Path(name string) string { return filepath.Join(b.Dir, name) }

// packages are what Build compiles, by binary name.
var packages = map[string]string{
	OrderService:     "github.com/orderflow/orderflow/services/order",
	InventoryService: "github.com/orderflow/orderflow/services/inventory",
	PaymentService:   "github.com/orderflow/orderflow/services/payment",
	ShippingService:  "github.com/orderflow/orderflow/services/shipping",
	"queuectl":       "github.com/orderflow/orderflow/queue/cmd/queuectl",
}

// Build compiles the four services and queuectl into dir with the go
// command found on PATH, from the workspace the working directory belongs
// to. The binaries are built without -race whatever the test binary uses:
// they are the system under test, and must be fast on a small machine.
func Build(ctx context.Context, dir string) (Binaries, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Binaries{}, fmt.Errorf("build: %w", err)
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, pkg := range packages {
		args = append(args, pkg)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return Binaries{}, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	b := Binaries{Dir: dir}
	for name := range packages {
		if _, err := os.Stat(b.Path(name)); err != nil {
			return Binaries{}, fmt.Errorf("build: %s missing after go build (%v)", name, err)
		}
	}
	buildDuration = time.Since(start)
	return b, nil
}

var (
	buildOnce     sync.Once
	buildResult   Binaries
	buildErr      error
	buildDir      string
	buildDuration time.Duration
)

// BinDirEnv names a directory of prebuilt binaries (order, inventory,
// payment, shipping, queuectl) that BuildOnce uses instead of building: to
// run the suite against a release, or to soak without rebuilding.
const BinDirEnv = "E2E_BIN_DIR"

// BuildOnce builds the binaries the first time it is called in this
// process, into a temporary directory that CleanupBuild removes (call it
// from TestMain), and returns the same result on every later call. With
// E2E_BIN_DIR set it uses the binaries there instead.
func BuildOnce() (Binaries, error) {
	buildOnce.Do(func() {
		if dir := os.Getenv(BinDirEnv); dir != "" {
			buildResult = Binaries{Dir: dir}
			for name := range packages {
				if _, err := os.Stat(buildResult.Path(name)); err != nil {
					buildErr = fmt.Errorf("%s=%s: %w", BinDirEnv, dir, err)
				}
			}
			return
		}
		buildDir, buildErr = os.MkdirTemp("", "orderflow-e2e-bin-")
		if buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		buildResult, buildErr = Build(ctx, buildDir)
	})
	return buildResult, buildErr
}

// BuildDuration is how long BuildOnce's go build took (0 before it ran).
func BuildDuration() time.Duration { return buildDuration }

// CleanupBuild removes what BuildOnce built.
func CleanupBuild() {
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
}

// TB is the part of testing.TB the harness uses.
type TB interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	Failed() bool
	TempDir() string
	Name() string
}

// MustBuild is BuildOnce that fails the test on error.
func MustBuild(t TB) Binaries {
	t.Helper()
	b, err := BuildOnce()
	if err != nil {
		t.Fatalf("build the binaries: %v", err)
	}
	return b
}
