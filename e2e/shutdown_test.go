package e2e

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/orderflow/orderflow/e2e/harness"
)

// The shutdown timeout of the scenarios below: the bound of the whole
// graceful stop. Each stop is required to end within it plus stopMargin,
// room for a loaded 2-core machine, and far below what the stop used to
// wait (the SQLite queue's 30 s busy timeout; 15 s on PostgreSQL).
const (
	scenarioShutdownTimeout = 4 * time.Second
	stopMargin              = 5 * time.Second
)

// termAll sends SIGTERM to every service at once and reports how long each
// took to exit (status 0, or the test fails).
func termAll(t *testing.T, sys *harness.System) map[string]time.Duration {
	t.Helper()
	var mu sync.Mutex
	took := map[string]time.Duration{}
	var wg sync.WaitGroup
	for _, name := range harness.Services {
		wg.Go(func() {
			began := time.Now()
			err := sys.Service(name).Term(time.Minute)
			mu.Lock()
			defer mu.Unlock()
			took[name] = time.Since(began)
			t.Logf("%s stopped in %s", name, took[name].Round(time.Millisecond))
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	wg.Wait()
	return took
}

// record is a JSON log record's level and message.
type record struct{ Level, Msg string }

// records decodes the JSON records among lines.
func records(lines []string) []record {
	var out []record
	for _, l := range lines {
		var r record
		if json.Unmarshal([]byte(l), &r) == nil && r.Msg != "" {
			out = append(out, r)
		}
	}
	return out
}

// checkStoppedLast requires the last record of each service's last run to
// be its "stopped" record: nothing happens after the stop says it is done.
func checkStoppedLast(t *testing.T, sys *harness.System) {
	t.Helper()
	for _, name := range harness.Services {
		want := "stopped"
		if name == harness.OrderService {
			want = "order service stopped"
		}
		recs := records(sys.Service(name).LastRun())
		if len(recs) == 0 || recs[len(recs)-1].Msg != want {
			last := "none"
			if len(recs) > 0 {
				last = fmt.Sprintf("%q", recs[len(recs)-1].Msg)
			}
			t.Errorf("%s: last record %s, want %q", name, last, want)
		}
	}
}

// Scenario 17. Another process holds the SQLite queue's write lock while
// every service gets SIGTERM, one order waiting in the order service's
// outbox. Each service still stops within SHUTDOWN_TIMEOUT (bound of the
// whole stop), exit status 0, its "stopped" record last: what could not
// be written to the queue by then is given up (an ack: its message comes
// again; a publish: it stays in the outbox). Once the lock is let go and
// the services are back, the order completes, nothing lost. The stop used
// to wait for the lock: 30 s for an idle worker, 40–60 s for the order
// service, past the 15 s after which devrun and Docker Compose kill.
func TestShutdownIsBoundedWhileTheQueueIsLocked(t *testing.T) {
	onQueues(t, []queue{sqliteQueue}, func(t *testing.T, _ string) {
		sys := start(t, "", harness.Config{Env: map[string]string{"SHUTDOWN_TIMEOUT": scenarioShutdownTimeout.String()}})
		ctx := timeout(t, 3*time.Minute)
		warm := placeAll(t, ctx, sys, orderMix(2, 28, "SKU-1"))
		waitTerminal(t, sys, time.Minute, ids(warm)...)

		release := holdQueueLock(t, ctx, queueFile(t, sys.QueueURL()))
		o, status, err := sys.Client().PlaceOrderOnce(ctx, orderMix(1, 29, "SKU-3")[0])
		if err != nil || status != http.StatusCreated {
			t.Fatalf("order while the queue takes no writes: got %d (%v), want 201", status, err)
		}
		for name, d := range termAll(t, sys) {
			if d > scenarioShutdownTimeout+stopMargin {
				t.Errorf("%s: stop took %s while another process held the queue's lock, want about SHUTDOWN_TIMEOUT (%s)", name, d.Round(time.Millisecond), scenarioShutdownTimeout)
			}
		}
		checkStoppedLast(t, sys)
		release()

		if err := sys.StartAll(ctx); err != nil {
			t.Fatal(err)
		}
		if got := waitTerminal(t, sys, time.Minute, o.ID)[o.ID]; got.Status != harness.StatusCompleted {
			t.Errorf("order %s placed before the stop: %s (%s), want COMPLETED", o.ID, got.Status, got.Reason)
		}
		sys.CheckInvariants(t, harness.Expect{Orders: 3, IDs: append(ids(warm), o.ID)})
		sys.CheckNoCrashes()
	})
}

// holdQueueLock takes the SQLite queue file's write lock from a
// connection of the test's own, as another process would, and returns its
// release.
func holdQueueLock(t *testing.T, ctx context.Context, path string) (release func()) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatalf("take the queue file's write lock: %v", err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
				t.Errorf("let the queue file's write lock go: %v", err)
			}
			_ = conn.Close()
		})
	}
	t.Cleanup(release)
	return release
}

// Scenario 18. The PostgreSQL server stops answering (its connections
// black-holed, as by a network cut) and every service gets SIGTERM, after
// an order went through. Each stops within SHUTDOWN_TIMEOUT, exit status
// 0: what it was still writing there (the offsets of its last batch, the
// record of its last ack) is given up. Once the server answers again and
// the services are back, a new order completes. The stop used to take
// 15 s whatever SHUTDOWN_TIMEOUT said: 10 s for the last ack's record,
// then 5 s for the subscriptions' offsets.
func TestShutdownIsBoundedWhenPostgresDoesNotAnswer(t *testing.T) {
	onQueues(t, []queue{postgresQueue}, func(t *testing.T, queueURL string) {
		proxy := newFreezingProxy(t, queueURL)
		sys := start(t, proxy.url, harness.Config{Env: map[string]string{"SHUTDOWN_TIMEOUT": scenarioShutdownTimeout.String()}})
		ctx := timeout(t, 3*time.Minute)
		first := placeAll(t, ctx, sys, orderMix(1, 30, "SKU-1"))
		waitTerminal(t, sys, time.Minute, ids(first)...)

		proxy.freeze()
		for name, d := range termAll(t, sys) {
			if d > scenarioShutdownTimeout+stopMargin {
				t.Errorf("%s: stop took %s while PostgreSQL did not answer, want about SHUTDOWN_TIMEOUT (%s)", name, d.Round(time.Millisecond), scenarioShutdownTimeout)
			}
		}
		checkStoppedLast(t, sys)
		proxy.thaw()

		if err := sys.StartAll(ctx); err != nil {
			t.Fatal(err)
		}
		second := placeAll(t, ctx, sys, orderMix(1, 31, "SKU-3"))
		for id, o := range waitTerminal(t, sys, time.Minute, ids(second)...) {
			if o.Status != harness.StatusCompleted {
				t.Errorf("order %s after the restart: %s (%s), want COMPLETED", id, o.Status, o.Reason)
			}
		}
		sys.CheckInvariants(t, harness.Expect{Orders: 2, IDs: append(ids(first), ids(second)...)})
		sys.CheckNoCrashes()
	})
}

// freezingProxy forwards TCP connections to a PostgreSQL server until it
// is frozen: then it forwards nothing more, either way, and new
// connections wait, as if the server had been cut off by the network
// without closing anything. Thawed, it forwards again.
type freezingProxy struct {
	url    string
	ln     net.Listener
	target string

	mu     sync.Mutex
	frozen chan struct{} // closed when thawed; nil while not frozen
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// newFreezingProxy starts a proxy to the server of queueURL and returns it
// with url, queueURL through the proxy. It stops when the test ends.
func newFreezingProxy(t *testing.T, queueURL string) *freezingProxy {
	t.Helper()
	u, err := url.Parse(queueURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{ln: ln, target: u.Host, conns: map[net.Conn]struct{}{}}
	if u.Port() == "" {
		p.target = net.JoinHostPort(u.Hostname(), "5432")
	}
	u.Host = ln.Addr().String()
	p.url = u.String()
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *freezingProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			return
		}
		p.wg.Go(func() {
			p.waitThawed()
			up, err := net.Dial("tcp", p.target)
			if err != nil || !p.track(up) {
				_ = c.Close()
				return
			}
			var pair sync.WaitGroup
			pair.Go(func() { p.pipe(up, c) })
			pair.Go(func() { p.pipe(c, up) })
			pair.Wait()
		})
	}
}

// track records c, to be closed with the proxy; false once it is closed.
func (p *freezingProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// pipe copies from src to dst, holding what it read while the proxy is
// frozen.
func (p *freezingProxy) pipe(dst, src net.Conn) {
	defer func() { _ = dst.Close(); _ = src.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.waitThawed()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *freezingProxy) waitThawed() {
	p.mu.Lock()
	thawed := p.frozen
	p.mu.Unlock()
	if thawed != nil {
		<-thawed
	}
}

func (p *freezingProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen == nil {
		p.frozen = make(chan struct{})
	}
}

func (p *freezingProxy) thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen != nil {
		close(p.frozen)
		p.frozen = nil
	}
}

func (p *freezingProxy) close() {
	p.thaw()
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// Scenario 19. A second SIGTERM forces the stop: the service exits at once
// with status 143 (128 + SIGTERM) and a line saying what that means,
// instead of waiting for what the graceful stop waits for (here a charge
// of a minute, with a SHUTDOWN_TIMEOUT of two). Nothing is lost: the
// charge comes back once payment is, and the order completes, charged
// once. A second signal used to be ignored.
func TestASecondSignalForcesTheStop(t *testing.T) {
	onQueues(t, []queue{sqliteQueue}, func(t *testing.T, _ string) {
		sys := start(t, "", harness.Config{ServiceEnv: map[string]map[string]string{
			harness.PaymentService: {"SHUTDOWN_TIMEOUT": "2m"},
		}})
		c := sys.Client()
		ctx := timeout(t, 3*time.Minute)
		if err := c.SetFault(ctx, harness.PaymentService, "payment_latency", "1m"); err != nil {
			t.Fatal(err)
		}
		order := placeAll(t, ctx, sys, orderMix(1, 32, "SKU-1"))[0]
		if _, err := waitPaymentCommands(ctx, sys, func(g harness.GroupStats) bool { return g.InFlight == 1 }); err != nil {
			t.Fatalf("waiting for payment to hold the charge: %v", err)
		}
		payment := sys.Service(harness.PaymentService)
		if err := payment.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		waitRecord(t, payment, "shutting down")
		began := time.Now()
		if err := payment.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		code, err := payment.WaitExit(stopMargin)
		if err != nil {
			t.Fatalf("after a second SIGTERM: %v; want the stop forced at once", err)
		}
		t.Logf("forced stop in %s", time.Since(began).Round(time.Millisecond))
		if code != 128+int(syscall.SIGTERM) {
			t.Errorf("forced stop: exit status %d, want %d", code, 128+int(syscall.SIGTERM))
		}
		if !lastRunHas(payment, "stop forced") {
			t.Errorf("forced stop: no line saying so; last lines:\n%s", strings.Join(payment.LastRun(), "\n"))
		}

		if err := payment.Start(ctx); err != nil { // latency back at its default
			t.Fatal(err)
		}
		if got := waitTerminal(t, sys, time.Minute, order.ID)[order.ID]; got.Status != harness.StatusCompleted {
			t.Errorf("order %s: %s (%s), want COMPLETED", order.ID, got.Status, got.Reason)
		}
		sys.CheckInvariants(t, harness.Expect{Orders: 1, IDs: []string{order.ID}})
	})
}

// waitRecord waits until the last run of p has logged a record msg.
func waitRecord(t *testing.T, p *harness.Process, msg string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		for _, r := range records(p.LastRun()) {
			if r.Msg == msg {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q record within 30s", p.Name(), msg)
		}
	}
}

// lastRunHas reports whether a line of p's last run contains s.
func lastRunHas(p *harness.Process, s string) bool {
	for _, l := range p.LastRun() {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// Scenario 20. A graceful stop that cuts a handler short (payment takes a
// minute per charge; SHUTDOWN_TIMEOUT is 3 s) is what the bound is for: the
// service logs a warning saying the handler was cancelled and its message
// comes again, no error, and exits 0. The charge comes back once payment
// is, and the order completes, charged once. Such a stop used to log
// "Cannot close router" at error level.
func TestAStopThatCutsAHandlerShortWarns(t *testing.T) {
	onQueues(t, []queue{sqliteQueue}, func(t *testing.T, _ string) {
		sys := start(t, "", harness.Config{ServiceEnv: map[string]map[string]string{
			harness.PaymentService: {"SHUTDOWN_TIMEOUT": "3s"},
		}})
		c := sys.Client()
		ctx := timeout(t, 3*time.Minute)
		if err := c.SetFault(ctx, harness.PaymentService, "payment_latency", "1m"); err != nil {
			t.Fatal(err)
		}
		order := placeAll(t, ctx, sys, orderMix(1, 33, "SKU-1"))[0]
		if _, err := waitPaymentCommands(ctx, sys, func(g harness.GroupStats) bool { return g.InFlight == 1 }); err != nil {
			t.Fatalf("waiting for payment to hold the charge: %v", err)
		}
		payment := sys.Service(harness.PaymentService)
		if err := payment.Term(time.Minute); err != nil {
			t.Fatal(err) // Term wants exit status 0
		}
		warned := false
		for _, r := range records(payment.LastRun()) {
			if r.Level == "ERROR" {
				t.Errorf("payment's stop logged %q at ERROR; want a warning", r.Msg)
			}
			warned = warned || r.Level == "WARN" && strings.Contains(r.Msg, "close timeout")
		}
		if !warned {
			t.Errorf("payment's stop: no warning that the running charge was cut short; last lines:\n%s", strings.Join(payment.LastRun(), "\n"))
		}

		if err := payment.Start(ctx); err != nil { // latency back at its default
			t.Fatal(err)
		}
		if got := waitTerminal(t, sys, time.Minute, order.ID)[order.ID]; got.Status != harness.StatusCompleted {
			t.Errorf("order %s: %s (%s), want COMPLETED", order.ID, got.Status, got.Reason)
		}
		sys.CheckInvariants(t, harness.Expect{Orders: 1, IDs: []string{order.ID}})
	})
}

// Scenario 21. SIGTERM during start-up is a stop like any other: the
// service exits 0 at once, without an error line, whether the signal
// finds it creating its database, migrating, opening the queue or already
// serving; also while another process holds the queue's write lock, which
// the start waits for. Such a signal used to end the start with status 1
// and "context canceled", or, during the lock wait, to be ignored until
// the wait failed (28 s later, status 1).
func TestASignalDuringStartUpIsACleanStop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts service processes; skipped with -short")
	}
	bins := harness.MustBuild(t)
	delays := []time.Duration{0, time.Millisecond, 3 * time.Millisecond, 8 * time.Millisecond, 15 * time.Millisecond, 30 * time.Millisecond}
	for _, name := range []string{harness.PaymentService, harness.OrderService} {
		for _, d := range delays {
			t.Run(fmt.Sprintf("%s/%s", name, d), func(t *testing.T) {
				dir := t.TempDir() // empty: the database and the queue are created
				out, code, _ := startThenTerm(t, bins.Path(name), dir, "sqlite://"+filepath.Join(dir, "queue.db"), d)
				checkCleanStop(t, name, out, code)
			})
		}
	}
	t.Run("payment/queue locked", func(t *testing.T) {
		dir := t.TempDir()
		queueURL := "sqlite://" + filepath.Join(dir, "queue.db")
		// A first run creates the queue's tables, then another process
		// takes the lock: the next start waits for it.
		out, code, _ := startThenTerm(t, bins.Path(harness.PaymentService), dir, queueURL, 5*time.Second)
		checkCleanStop(t, harness.PaymentService, out, code)
		release := holdQueueLock(t, context.Background(), filepath.Join(dir, "queue.db"))
		defer release()
		out, code, took := startThenTerm(t, bins.Path(harness.PaymentService), dir, queueURL, 500*time.Millisecond)
		checkCleanStop(t, harness.PaymentService, out, code)
		if took > stopMargin {
			t.Errorf("exit %s after SIGTERM while the start waited for the queue's lock; want at once, not when the wait fails", took.Round(time.Millisecond))
		}
	})
}

// startThenTerm runs the service binary bin on dir and queueURL, sends it
// SIGTERM delay after its last record before it opens the service (at
// debug level: "GC percent"), and returns its output, exit status and how
// long it took to exit after the signal.
func startThenTerm(t *testing.T, bin, dir, queueURL string, delay time.Duration) (out []string, code int, took time.Duration) {
	t.Helper()
	args := []string{"--data-dir", dir, "--queue-url", queueURL, "--http-addr", "127.0.0.1:0"}
	if filepath.Base(bin) == harness.OrderService {
		args = append(args, "--admin-addr", "127.0.0.1:0")
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "LOG_LEVEL=debug", "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stderr)
		close(lines)
	}()
	signalled := false
	var began time.Time
	term := time.NewTimer(time.Hour)
	defer term.Stop()
	giveUp := time.After(time.Minute)
	for lines != nil {
		select {
		case l, ok := <-lines:
			if !ok {
				lines = nil
				continue
			}
			out = append(out, l)
			if !signalled && strings.Contains(l, `"msg":"GC percent"`) {
				signalled = true
				term.Reset(delay)
			}
		case <-term.C:
			began = time.Now()
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
				t.Fatal(err)
			}
		case <-giveUp:
			_ = cmd.Process.Kill()
			t.Fatalf("%s still running a minute after it started; output:\n%s", bin, strings.Join(out, "\n"))
		}
	}
	err = cmd.Wait()
	if began.IsZero() {
		t.Fatalf("%s exited before the signal (%v); output:\n%s", bin, err, strings.Join(out, "\n"))
	}
	took = time.Since(began)
	code = cmd.ProcessState.ExitCode()
	return out, code, took
}

// checkCleanStop requires the run whose output is out to have ended with
// status 0 and without an error line.
func checkCleanStop(t *testing.T, name string, out []string, code int) {
	t.Helper()
	bad := code != 0
	for _, l := range out {
		if strings.HasPrefix(l, name+":") || strings.Contains(l, `"level":"ERROR"`) {
			bad = true
		}
	}
	if bad {
		t.Errorf("%s stopped during start-up: exit status %d; want 0 without an error line; output:\n%s", name, code, strings.Join(out, "\n"))
	}
}
