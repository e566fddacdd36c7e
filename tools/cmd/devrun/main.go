// Command devrun starts orderflow's processes side by side for local use
// (`go tool task run`): each service is its own OS process on the embedded
// SQLite queue under one data directory, its output prefixed with its name.
// Once every process has logged that it serves, devrun says so in one line
// with their addresses (upWatch).
//
// A process that fails (a non-zero exit status, or a signal devrun did not
// send: the crash_* fault flags exit 3 on purpose) is started again after a
// delay that doubles with each failure within --restart-window, like
// docker-compose.yml's restart: on-failure. One that fails more than
// --restart-limit times within the window makes devrun give up: it stops
// the others and exits 1, so that a service that cannot start (bad
// configuration, port in use) ends the run with its error in view. A
// process that exits 0 without being asked to is left stopped.
//
// SIGINT or SIGTERM stops every process with SIGTERM and waits for them; a
// process that does not stop within the grace period is killed. A second
// signal meanwhile sends those still stopping SIGTERM again (the services
// then stop at once: their second signal forces the stop). Nothing is
// started again once the stop has begun, and a failure that comes with or
// after the interrupt does not make devrun exit 1.
//
// On Unix each process runs in a process group of its own, so a terminal's
// Ctrl-C (SIGINT to the foreground process group) reaches devrun alone and
// devrun is the only one to signal its processes: they stop in its order,
// with its SIGTERM, and none fails of the SIGINT before devrun has begun to
// stop. devrun signals the whole group of a process (its pid), so what the
// process started itself (the real service under `go run`, or under a
// shell script) stops with it. On Linux a process also gets SIGTERM when
// devrun dies without stopping it (SIGKILL): no process devrun started
// outlives it (what such a process started itself, under `go run`, may).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	stopOn := []os.Signal{os.Interrupt, syscall.SIGTERM}
	// A closed terminal (SIGHUP) stops the processes as Ctrl-C does, but
	// not under nohup: Notify would undo the ignore it inherited.
	if !signal.Ignored(syscall.SIGHUP) {
		stopOn = append(stopOn, syscall.SIGHUP)
	}
	// The first signal stops the processes (ctx); a second one, while
	// they stop, is passed on to them (forceStop): the services take a
	// second signal for a stop at once, as when run in a terminal alone.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	forceStop := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, stopOn...)
	defer signal.Stop(sigs)
	relayDone := make(chan struct{})
	defer close(relayDone)
	go relaySignals(sigs, cancel, forceStop, relayDone)
	// Output that nobody reads any more (`go tool task run | tee log`,
	// with tee gone at Ctrl-C) must not kill devrun by SIGPIPE halfway
	// through the stop: the writes fail, and are ignored, instead.
	signal.Ignore(syscall.SIGPIPE)
	stopWithParent()
	if err := run(ctx, forceStop, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "devrun:", err)
		os.Exit(1)
	}
}

// relaySignals cancels the run at the first signal on sigs and closes
// forceStop at the second, until done closes.
func relaySignals(sigs <-chan os.Signal, cancel context.CancelFunc, forceStop chan<- struct{}, done <-chan struct{}) {
	for _, act := range []func(){cancel, func() { close(forceStop) }} {
		select {
		case <-sigs:
			act()
		case <-done:
			return
		}
	}
}

type config struct {
	dataDir  string
	binDir   string
	services []string
	grace    time.Duration

	restartDelay  time.Duration // before the first restart within the window
	restartLimit  int           // restarts allowed within restartWindow
	restartWindow time.Duration
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("devrun", flag.ContinueOnError)
	cfg := config{}
	var services string
	fs.StringVar(&cfg.dataDir, "data-dir", "data", "directory for the queue file and each service's database")
	fs.StringVar(&cfg.binDir, "bin-dir", "bin", "directory holding the built binaries")
	fs.StringVar(&services, "services", "order,inventory,payment,shipping,console", "comma-separated processes to start; missing binaries are skipped with a note")
	fs.DurationVar(&cfg.grace, "grace", 15*time.Second, "how long to wait for a clean stop before SIGKILL")
	fs.DurationVar(&cfg.restartDelay, "restart-delay", time.Second, "wait before starting a failed process again; doubles with each further failure within --restart-window")
	fs.IntVar(&cfg.restartLimit, "restart-limit", 3, "restarts of one process allowed within --restart-window; one more failure stops everything (exit 1); 0 never restarts")
	fs.DurationVar(&cfg.restartWindow, "restart-window", 30*time.Second, "how far back failures count towards --restart-limit and the doubling of --restart-delay")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: devrun [flags]

Starts the orderflow processes on embedded SQLite and stops them together on
Ctrl-C (exit 0).

A process that fails (non-zero exit status, or killed by a signal devrun did
not send) is started again after --restart-delay, doubled for each further
failure within --restart-window, like compose's restart: on-failure. After
--restart-limit restarts within the window, one more failure stops every
process and devrun exits 1. A process that exits 0 on its own stays stopped.
A restarted service starts with the fault flags of its environment: flags
set at run time through its admin API (crash_after_commit, …) are off again,
while one set in the environment (PAYMENT_CRASH_AFTER_COMMIT=true) stays on
and crashes the service at each new message: raise --restart-limit for that.

Each process gets devrun's environment with DATA_DIR (--data-dir), and
unless they are set QUEUE_URL (the SQLite file queue.db there),
OTEL_EXPORTER_OTLP_ENDPOINT (http://127.0.0.1:4318) and GOMAXPROCS=1; then
<NAME>_<VAR> as <VAR> for the process NAME alone, over all of those:
ORDER_HTTP_ADDR=127.0.0.1:9080 moves order only, PAYMENT_LOG_LEVEL=debug
is for payment.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, s := range strings.Split(services, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.services = append(cfg.services, s)
		}
	}
	var errs []error
	if len(cfg.services) == 0 {
		errs = append(errs, errors.New("--services names no process"))
	}
	if cfg.grace < 0 {
		errs = append(errs, fmt.Errorf("--grace %s: must not be negative", cfg.grace))
	}
	if cfg.restartDelay < 0 {
		errs = append(errs, fmt.Errorf("--restart-delay %s: must not be negative", cfg.restartDelay))
	}
	if cfg.restartLimit < 0 {
		errs = append(errs, fmt.Errorf("--restart-limit %d: must not be negative", cfg.restartLimit))
	}
	if cfg.restartWindow <= 0 {
		errs = append(errs, fmt.Errorf("--restart-window %s: must be positive", cfg.restartWindow))
	}
	if err := errors.Join(errs...); err != nil {
		return config{}, err
	}
	return cfg, nil
}

// run starts the processes and supervises them until ctx ends, then stops
// them: SIGTERM, and SIGKILL after --grace; once forceStop closes, those
// still stopping get SIGTERM again.
func run(ctx context.Context, forceStop <-chan struct{}, args []string, out io.Writer) error {
	cfg, err := parseFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	dataDir, err := filepath.Abs(cfg.dataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}

	width := 0
	for _, s := range cfg.services {
		width = max(width, len(s))
	}
	s := &supervisor{
		cfg:         cfg,
		out:         out,
		interrupted: ctx.Done(),
		forceStop:   forceStop,
		stopping:    make(chan struct{}),
		failed:      make(chan error, len(cfg.services)),
	}
	var children []*child
	for _, name := range cfg.services {
		bin := binaryPath(cfg.binDir, name)
		if _, err := os.Stat(bin); err != nil {
			fmt.Fprintf(out, "devrun: %s not built (%s), skipping\n", name, bin)
			continue
		}
		children = append(children, &child{
			name:   name,
			bin:    bin,
			prefix: fmt.Sprintf("%-*s | ", width, name),
			env:    childEnv(name, os.Environ(), dataDir),
		})
	}
	if len(children) == 0 {
		return errors.New("nothing to run: build the binaries first (go tool task build)")
	}
	names := make([]string, len(children))
	for i, c := range children {
		names[i] = c.name
	}
	s.up = newUpWatch(names, time.Now())

	// Start every process before supervising any, so that a process that
	// cannot even be started stops the run at once.
	var startErr error
	for _, c := range children {
		p, err := s.start(c)
		if err != nil {
			startErr = err
			break
		}
		s.wg.Go(func() { s.supervise(c, p) })
	}
	// allDone closes once every supervisor (and so every process) has
	// ended: each process exited 0 on its own, or the stop below.
	allDone := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(allDone)
	}()

	runErr := startErr
	if runErr == nil {
		var allStopped bool
		if runErr, allStopped = firstOutcome(ctx, s.failed, allDone); allStopped {
			s.logf("devrun: every process has stopped")
		}
	}
	// An interrupt that came with the failure (both ready above, or the
	// interrupt first and the failure on its heels) wins: Ctrl-C ends
	// with 0 whatever a process did meanwhile. The failure is still told.
	if runErr != nil && ctx.Err() != nil {
		s.logf("devrun: interrupted; also: %v", runErr)
		runErr = nil
	}
	close(s.stopping)
	<-allDone
	// Another process that was given up on meanwhile (failed has room
	// for every one): told, not returned.
	for drained := false; !drained; {
		select {
		case err := <-s.failed:
			s.logf("devrun: also: %v", err)
		default:
			drained = true
		}
	}
	return runErr
}

// child is a process devrun runs, and starts again when it fails.
type child struct {
	name, bin, prefix string
	env               []string
}

// childEnv is the environment of the process name: devrun's, what devrun
// sets unless it is set already, then each <NAME>_<VAR> of the environment
// as <VAR> (the last value of a variable wins).
func childEnv(name string, environ []string, dataDir string) []string {
	lookup := func(key, def string) string {
		for i := len(environ) - 1; i >= 0; i-- {
			if k, v, _ := strings.Cut(environ[i], "="); k == key && v != "" {
				return v
			}
		}
		return def
	}
	env := append(environ[:len(environ):len(environ)],
		"QUEUE_URL="+lookup("QUEUE_URL", "sqlite://"+filepath.Join(dataDir, "queue.db")),
		"DATA_DIR="+dataDir,
		// Where Jaeger (docker compose up jaeger, or a local build)
		// listens for OTLP over HTTP; the services say once a minute
		// if nothing is there.
		"OTEL_EXPORTER_OTLP_ENDPOINT="+lookup("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
		// One P per process: the processes take turns with the queue
		// file's write lock, and a writer whose P was handed away
		// during a long cgo call waits for one while holding it. On 2
		// cores this measured ×1.1–1.2 orders/s and a lower p99 in
		// every alternating pair (docs/benchmarks.md). Set GOMAXPROCS
		// to override.
		"GOMAXPROCS="+lookup("GOMAXPROCS", "1"),
	)
	// One process's own settings: ORDER_HTTP_ADDR is order's HTTP_ADDR.
	// The prefixed variable stays too (the fault flags read PAYMENT_… etc.
	// themselves, with the same meaning).
	prefix := strings.ToUpper(name) + "_"
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && len(k) > len(prefix) && strings.HasPrefix(k, prefix) {
			env = append(env, k[len(prefix):]+"="+v)
		}
	}
	return env
}

// maxRestartDelay caps the doubling of --restart-delay.
const maxRestartDelay = time.Minute

// supervisor runs the children; its goroutines are all counted in wg.
type supervisor struct {
	cfg   config
	out   io.Writer
	outMu sync.Mutex
	wg    sync.WaitGroup
	// interrupted closes on SIGINT or SIGTERM to devrun, a moment before
	// run closes stopping: from then on no exit is a failure and nothing
	// is started again.
	interrupted <-chan struct{}
	// forceStop closes on a second signal to devrun: each process still
	// stopping gets SIGTERM again (a service then stops at once).
	forceStop <-chan struct{}
	// stopping closes when devrun stops: every supervise returns after
	// stopping its process, and none starts one again.
	stopping chan struct{}
	// failed receives a child's last failure when devrun gives up on it;
	// it has room for one per child, so no supervisor blocks on it.
	failed chan error
	// up reads the children's output for their start lines.
	up *upWatch
}

// process is a started child; done closes once it has been waited for,
// err is then cmd.Wait's.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (s *supervisor) logf(format string, args ...any) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	fmt.Fprintf(s.out, format+"\n", args...)
}

// start starts c; a goroutine of s.wg copies its output and waits for it.
func (s *supervisor) start(c *child) (*process, error) {
	cmd := exec.Command(c.bin)
	cmd.Env = c.env
	cmd.SysProcAttr = sysProcAttr() // its own process group; see proc_*.go
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", c.name, err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", c.name, err)
	}
	s.up.started(c.name)
	p := &process{cmd: cmd, done: make(chan struct{})}
	s.wg.Go(func() {
		defer close(p.done)
		copyPrefixed(stdout, s.out, &s.outMu, c.prefix, func(line []byte) {
			if msg := s.up.line(c.name, line, time.Now()); msg != "" {
				s.logf("%s", msg)
			}
		})
		p.err = cmd.Wait()
		s.logf("%sexited: %s", c.prefix, exitText(p.err))
	})
	return p, nil
}

// isStopping says whether devrun has begun to stop, or been told to.
func (s *supervisor) isStopping() bool {
	select {
	case <-s.stopping:
		return true
	case <-s.interrupted:
		return true
	default:
		return false
	}
}

// supervise owns c from its start as p until devrun stops or gives up on
// it: it restarts c when it fails, and stops it when devrun stops. It
// returns only once c's current process has exited.
func (s *supervisor) supervise(c *child, p *process) {
	var failures []time.Time // within the restart window
	restarts := 0
	for {
		select {
		case <-p.done:
		case <-s.stopping:
			s.stop(p)
			return
		}
		if s.isStopping() {
			return // it exited as devrun began to stop: the stop's doing, or moot
		}
		if p.err == nil {
			s.logf("devrun: %s exited with status 0 on its own; leaving it stopped (only failures are restarted), the others keep running", c.name)
			return
		}
		how := exitHow(p.err)
		now := time.Now()
		failures = append(recent(failures, now.Add(-s.cfg.restartWindow)), now)
		if len(failures) > s.cfg.restartLimit {
			var err error
			if s.cfg.restartLimit == 0 {
				err = fmt.Errorf("%s %s (restarts are off: --restart-limit 0); stopping the others", c.name, how)
			} else {
				err = fmt.Errorf("%s %s: %d failures within %s, more than --restart-limit %d allows; giving up and stopping the others",
					c.name, how, len(failures), s.cfg.restartWindow, s.cfg.restartLimit)
			}
			if s.up.tookPort(c.name) {
				err = fmt.Errorf("%w (its address is in use: is another orderflow running? Stop it, or move this one: %s_HTTP_ADDR=127.0.0.1:0 picks a free port)",
					err, strings.ToUpper(c.name))
			}
			s.failed <- err
			return
		}
		restarts++
		delay := s.cfg.restartDelay
		for range len(failures) - 1 {
			delay = min(2*delay, maxRestartDelay)
		}
		delay = max(delay, s.cfg.restartDelay) // --restart-delay above the cap
		s.logf("devrun: %s %s; restarting in %s (restart %d)", c.name, how, delay, restarts)
		if code := exitCode(p.err); code == 3 {
			s.logf("devrun: (status 3 is how the crash_* fault flags exit; fault flags set at run time are not kept, so %s starts with those of its environment: a crash flag set through its admin API is off again, one set in the environment stays on)", c.name)
		}
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-s.stopping:
			timer.Stop()
			return
		}
		if s.isStopping() {
			return // both were ready: the stop wins
		}
		np, err := s.start(c)
		if err != nil {
			// A failure like an exit, restarted within the limit: the
			// binary may be in the middle of a rebuild.
			np = notStarted(err)
		}
		p = np
	}
}

// notStarted stands for a process that could not be started: ended at
// once, with err.
func notStarted(err error) *process {
	done := make(chan struct{})
	close(done)
	return &process{done: done, err: fmt.Errorf("could not be started (%w)", err)}
}

// stop sends p (its process group, on Unix) SIGTERM and SIGKILLs it if it
// outlives the grace period; it returns once p has exited and its output
// has ended.
func (s *supervisor) stop(p *process) {
	if p.cmd == nil {
		return // never started (notStarted)
	}
	if err := signalProcess(p, syscall.SIGTERM); err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			<-p.done // exited as the stop began
			return
		}
		// No SIGTERM to send (Windows): kill it at once.
		s.kill(p)
		return
	}
	timer := time.NewTimer(s.cfg.grace)
	defer timer.Stop()
	select {
	case <-p.done:
		return
	case <-s.forceStop:
		if err := signalProcess(p, syscall.SIGTERM); err == nil {
			select {
			case <-p.done:
				return
			case <-timer.C:
			}
		}
	case <-timer.C:
	}
	s.kill(p)
}

// kill SIGKILLs p (its process group, on Unix) and returns once p has
// exited and its output has ended.
func (s *supervisor) kill(p *process) {
	if err := signalProcess(p, syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		_ = p.cmd.Process.Kill() // the process itself, at least
	}
	<-p.done
}

// recent returns the times in ts after since, in place.
func recent(ts []time.Time, since time.Time) []time.Time {
	kept := ts[:0]
	for _, t := range ts {
		if t.After(since) {
			kept = append(kept, t)
		}
	}
	return kept
}

// binaryPath is the path devrun starts service name from: binDir joined
// with the name, with a directory in it always, so that exec does not look
// the name up in PATH (filepath.Join(".", "order") is "order").
func binaryPath(binDir, name string) string {
	p := filepath.Join(binDir, name)
	if !strings.ContainsRune(p, filepath.Separator) {
		p = "." + string(filepath.Separator) + p
	}
	return p
}

// copyPrefixed writes each line of r to w after prefix, until r ends. A
// line longer than copyLineMax is written in pieces of that size, each on
// a line of its own: the child's output must be read to the end whatever
// it holds, or the child blocks on its next write.
// onLine, when not nil, sees each line (or piece) after it is written.
func copyPrefixed(r io.Reader, w io.Writer, mu *sync.Mutex, prefix string, onLine func(line []byte)) {
	br := bufio.NewReaderSize(r, copyLineMax)
	for {
		line, _, err := br.ReadLine() // a piece of a longer line, too
		if err != nil {
			return
		}
		mu.Lock()
		fmt.Fprintf(w, "%s%s\n", prefix, line)
		mu.Unlock()
		if onLine != nil {
			onLine(line)
		}
	}
}

// copyLineMax is the longest piece of a child's output line copyPrefixed
// writes as one line.
const copyLineMax = 64 * 1024

func exitText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// exitCode is the exit status in err from cmd.Wait: 0 for nil, -1 when
// the process was killed by a signal or did not run.
func exitCode(err error) int {
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// exitHow says how a process ended, from cmd.Wait's error (not nil).
func exitHow(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Sprintf("was killed by signal %d (%s)", int(ws.Signal()), ws.Signal())
		}
		return fmt.Sprintf("exited with status %d", ee.ExitCode())
	}
	return fmt.Sprintf("failed: %v", err)
}

// firstOutcome waits for what ends a run: ctx (an interrupt), a process
// given up on (its error), or every process stopped on its own
// (allStopped). A process given up on ends its supervisor too, so when it
// was the last both are ready at once: the failure wins.
func firstOutcome(ctx context.Context, failed <-chan error, allDone <-chan struct{}) (err error, allStopped bool) {
	select {
	case <-ctx.Done():
		return nil, false
	case err := <-failed:
		return err, false
	case <-allDone:
		select {
		case err := <-failed:
			return err, false
		default:
			return nil, true
		}
	}
}
