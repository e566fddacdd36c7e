package browsertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// system is the four services and the console, each its own process, on a
// SQLite queue in a temporary directory.
type system struct {
	ConsoleURL string
	OrderURL   string
	JaegerURL  string
	logDir     string
	procs      []*proc
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// repoRoot is the directory holding go.work.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.work not found above the test's directory")
		}
		dir = parent
	}
}

// buildBinaries builds the four services and the console into dir with one
// go build.
func buildBinaries(t *testing.T, dir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator),
		"./services/order", "./services/inventory", "./services/payment", "./services/shipping", "./services/console")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built the services and the console in %s", time.Since(start).Round(time.Millisecond))
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startSystem builds and starts everything and waits until it is ready.
// Processes are stopped (SIGTERM, then SIGKILL) when the test ends; their
// logs are printed if it failed.
func startSystem(t *testing.T) *system {
	t.Helper()
	bin := t.TempDir()
	buildBinaries(t, bin)
	data := t.TempDir()
	s := &system{logDir: t.TempDir(), JaegerURL: "http://jaeger.invalid:16686"}
	addr := map[string]string{}
	for _, n := range []string{"order", "order-admin", "inventory", "payment", "shipping", "console"} {
		addr[n] = freeAddr(t)
	}
	s.ConsoleURL = "http://" + addr["console"]
	s.OrderURL = "http://" + addr["order"]
	common := []string{
		"QUEUE_URL=sqlite://" + filepath.Join(data, "queue.db"),
		"DATA_DIR=" + data,
		"OTEL_TRACES_EXPORTER=none",
		"LOG_LEVEL=info",
	}
	// HTTP_ADDR and friends are passed as flags: the environment of the
	// test may hold values meant for something else.
	s.start(t, bin, "order", common, "--http-addr", addr["order"], "--admin-addr", addr["order-admin"],
		// Long enough that a charge stuck in the dead-letter queue waits for
		// its replay instead of being compensated.
		"--step-timeout", "2m")
	s.start(t, bin, "inventory", common, "--http-addr", addr["inventory"])
	// Two attempts: a failing charge reaches the dead-letter queue fast.
	s.start(t, bin, "payment", common, "--http-addr", addr["payment"], "--max-attempts", "2")
	s.start(t, bin, "shipping", common, "--http-addr", addr["shipping"])
	s.start(t, bin, "console", common, "--http-addr", addr["console"],
		"--order-url", s.OrderURL, "--order-admin-url", "http://"+addr["order-admin"],
		"--inventory-url", "http://"+addr["inventory"], "--payment-url", "http://"+addr["payment"],
		"--shipping-url", "http://"+addr["shipping"], "--queue-url", "sqlite://"+filepath.Join(data, "queue.db"),
		"--jaeger-ui-url", s.JaegerURL, "--refresh", "500ms")

	t.Cleanup(func() {
		if err := s.stop(stopTimeout); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			s.dumpLogs(t)
		}
	})
	for _, u := range []string{
		s.OrderURL + "/readyz", "http://" + addr["order-admin"] + "/readyz",
		"http://" + addr["inventory"] + "/readyz", "http://" + addr["payment"] + "/readyz",
		"http://" + addr["shipping"] + "/readyz", s.ConsoleURL + "/healthz",
	} {
		s.waitReady(t, u, 60*time.Second)
	}
	return s
}

func (s *system) start(t *testing.T, bin, name string, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, name), args...)
	cmd.Env = append(os.Environ(), env...)
	s.launch(t, name, cmd)
}

// launch starts cmd as the process name, its output in name.log.
func (s *system) launch(t *testing.T, name string, cmd *exec.Cmd) {
	t.Helper()
	logf, err := os.Create(filepath.Join(s.logDir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	s.procs = append(s.procs, p)
}

func (s *system) waitReady(t *testing.T, u string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		for _, p := range s.procs {
			select {
			case <-p.done:
				t.Fatalf("%s exited while starting: %v", p.name, p.err)
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s (last error %v)", u, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopTimeout is how long the processes get to exit after SIGTERM.
const stopTimeout = 10 * time.Second

// stop sends SIGTERM to every process and SIGKILLs those still running
// within after. It reports every process that did not exit with status 0:
// a service that no longer handles SIGTERM (killed by it, or hung until
// SIGKILL) must fail the test, as must one that crashed during it.
func (s *system) stop(within time.Duration) error {
	for _, p := range s.procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.Now().Add(within)
	var errs []error
	for _, p := range s.procs {
		if !p.exitedBy(deadline) {
			_ = p.cmd.Process.Kill()
			<-p.done
			errs = append(errs, fmt.Errorf("%s did not stop within %s of SIGTERM; killed", p.name, within))
			continue
		}
		if p.err != nil {
			errs = append(errs, fmt.Errorf("%s did not exit cleanly: %w", p.name, p.err))
		}
	}
	return errors.Join(errs...)
}

// exitedBy waits until p has exited or deadline has passed, and says
// whether it exited. It has a timer of its own: a timer shared by all the
// processes fires once, and the next hung process would wait on it forever.
func (p *proc) exitedBy(deadline time.Time) bool {
	select {
	case <-p.done: // even past the deadline
		return true
	default:
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-p.done:
		return true
	case <-timer.C:
		return false
	}
}

// dumpLogs prints the end of each process's log.
func (s *system) dumpLogs(t *testing.T) {
	for _, p := range s.procs {
		data, err := os.ReadFile(filepath.Join(s.logDir, p.name+".log"))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		t.Logf("---- %s (last %d lines) ----\n%s", p.name, len(lines), strings.Join(lines, "\n"))
	}
}

func (s *system) String() string {
	return fmt.Sprintf("console %s, order API %s", s.ConsoleURL, s.OrderURL)
}
