package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/orderflow/orderflow/pkg/catalog"
)

// services are the four binaries of a system, in saga order.
var services = []string{"order", "inventory", "payment", "shipping"}

// buildBinaries compiles the four services into dir from the workspace
// the working directory belongs to, without -race (they are the system
// under test).
func buildBinaries(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	gowork, err := exec.CommandContext(ctx, "go", "env", "GOWORK").Output()
	if err != nil {
		return fmt.Errorf("go env GOWORK: %w", err)
	}
	if w := strings.TrimSpace(string(gowork)); w == "" || w == "off" {
		return errors.New("not inside the orderflow workspace (no go.work): run e2ebench from the repository, or pass --bin-dir")
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, s := range services {
		args = append(args, "github.com/orderflow/orderflow/services/"+s)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out.Bytes())
	}
	return nil
}

// writeCatalog writes the default catalogue with stock that a benchmark
// cannot exhaust, so that every order can complete.
func writeCatalog(path string) error {
	c := catalog.Default()
	for i := range c {
		c[i].InitialStock = 1_000_000_000
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// freePort returns a loopback TCP port that was free a moment ago and is
// not in taken, outside the kernel's ephemeral range where there is room
// (below it, else above it). A port from that range (":0") is free only
// until the kernel hands it to another process's ":0", such as a test of
// another package running beside this one, which could bind it before the
// service does; the kernel never picks one outside the range.
func freePort(taken map[int]bool) (int, error) {
	lo, hi := pickRange()
	if lo == 0 {
		return ephemeralPort(taken)
	}
	for range 100 {
		port := lo + rand.IntN(hi-lo+1)
		if taken[port] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue // taken: try another
		}
		if err := l.Close(); err != nil {
			return 0, err
		}
		taken[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("no free loopback port found in %d..%d", lo, hi)
}

// ephemeralPort is freePort's last resort, a port the kernel picks, when
// its ephemeral range leaves no room outside it.
func ephemeralPort(taken map[int]bool) (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		if err := l.Close(); err != nil {
			return 0, err
		}
		if !taken[port] {
			taken[port] = true
			return port, nil
		}
	}
	return 0, errors.New("no free loopback port")
}

// minPort is the lowest port freePort picks: above the well-known and the
// commonly configured ones.
const minPort = 20000

// pickRange is where freePort picks ports: below the kernel's ephemeral
// range (Linux's ip_local_port_range; 32768–60999, its default, where that
// cannot be read) when at least 1,000 ports lie between minPort and it,
// else above it when 1,000 lie there; 0, 0 when neither.
func pickRange() (lo, hi int) {
	elo, ehi := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			l, err1 := strconv.Atoi(f[0])
			h, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && l <= h {
				elo, ehi = l, h
			}
		}
	}
	switch {
	case elo-minPort >= 1000:
		return minPort, elo - 1
	case 65535-ehi >= 1000:
		return ehi + 1, 65535
	}
	return 0, 0
}

// process is one running service.
type process struct {
	name     string
	cmd      *exec.Cmd
	httpURL  string // its HTTP API (order) or admin/state API (the others)
	adminURL string // its admin API (/debug/pprof, …)
	logPath  string
	done     chan struct{}
	err      error // of Wait, once done is closed
}

// system is the four services as OS processes on one queue.
type system struct {
	procs   []*process
	started time.Time
}

type systemConfig struct {
	BinDir   string
	Dir      string // per-service data directories and logs
	QueueURL string
	Catalog  string
	Env      []string // extra KEY=VALUE for every service
}

// startSystem starts the four services and returns without waiting for
// them to be ready (see ready).
func startSystem(cfg systemConfig) (*system, error) {
	s := &system{started: time.Now()}
	taken := map[int]bool{}
	for _, name := range services {
		port, err := freePort(taken)
		if err != nil {
			s.stop(0)
			return nil, err
		}
		dataDir := filepath.Join(cfg.Dir, name)
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			s.stop(0)
			return nil, err
		}
		env := append(os.Environ(),
			"QUEUE_URL="+cfg.QueueURL,
			"DATA_DIR="+dataDir,
			"HTTP_ADDR=127.0.0.1:"+strconv.Itoa(port),
			"CATALOG_FILE="+cfg.Catalog,
			"LOG_LEVEL=warn",
			// No collector here: spans would only be dropped, and the
			// exporter would warn.
			"OTEL_TRACES_EXPORTER=none",
		)
		env = withDefaultGOMAXPROCS(env, os.LookupEnv)
		adminURL := "http://127.0.0.1:" + strconv.Itoa(port)
		if name == "order" {
			adminPort, err := freePort(taken)
			if err != nil {
				s.stop(0)
				return nil, err
			}
			env = append(env, "ADMIN_ADDR=127.0.0.1:"+strconv.Itoa(adminPort))
			adminURL = "http://127.0.0.1:" + strconv.Itoa(adminPort)
		}
		env = append(env, cfg.Env...)
		logPath := filepath.Join(cfg.Dir, name+".log")
		logFile, err := os.Create(logPath)
		if err != nil {
			s.stop(0)
			return nil, err
		}
		cmd := exec.Command(filepath.Join(cfg.BinDir, name))
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = procAttr()
		if err := cmd.Start(); err != nil {
			logFile.Close()
			s.stop(0)
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		p := &process{name: name, cmd: cmd, httpURL: "http://127.0.0.1:" + strconv.Itoa(port), adminURL: adminURL, logPath: logPath, done: make(chan struct{})}
		go func() {
			p.err = cmd.Wait()
			logFile.Close()
			close(p.done)
		}()
		s.procs = append(s.procs, p)
	}
	return s, nil
}

func (s *system) orderURL() string { return s.procs[0].httpURL }

// ready waits until every service answers GET /readyz with 200.
func (s *system) ready(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second}
	for _, p := range s.procs {
		for {
			select {
			case <-p.done:
				return fmt.Errorf("%s exited: %v\n%s", p.name, p.err, tail(p.logPath, 20))
			default:
			}
			resp, err := client.Get(p.httpURL + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s not ready: %w\n%s", p.name, ctx.Err(), tail(p.logPath, 20))
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// exited returns an error naming a service that stopped, if any did.
func (s *system) exited() error {
	for _, p := range s.procs {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited during the run: %v\n%s", p.name, p.err, tail(p.logPath, 20))
		default:
		}
	}
	return nil
}

// stop sends SIGTERM to every service and waits up to grace for them,
// then kills what is left.
func (s *system) stop(grace time.Duration) {
	for _, p := range s.procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(grace)
	for _, p := range s.procs {
		select {
		case <-p.done:
		case <-deadline:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

// procStats is what /proc says about one process, and what its metrics
// say about the SQLite queue file's write lock.
type procStats struct {
	RSSKiB  int64   // VmRSS
	HWMKiB  int64   // VmHWM: peak resident set
	CPUSecs float64 // user + system time
	// QueueLock is nil where the process reports no such times (another
	// queue backend, or its metrics could not be read).
	QueueLock *queueLockTimes
}

// queueLockTimes are the process's queue_sqlite_write_lock_held and _wait
// counters, in seconds since it started.
type queueLockTimes struct{ Held, Wait float64 }

// Metric names as the services' Prometheus endpoints serve them
// (queue.MetricWriteLockHeld and queue.MetricWriteLockWait).
const (
	metricLockHeld = "queue_sqlite_write_lock_held_seconds_total"
	metricLockWait = "queue_sqlite_write_lock_wait_seconds_total"
)

// readQueueLockTimes reads the write-lock counters from the Prometheus
// endpoint at url; nil when they are not there.
func readQueueLockTimes(url string) *queueLockTimes {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	body, err := get(ctx, url)
	if err != nil {
		return nil
	}
	defer body.Close()
	return parseQueueLockTimes(body)
}

// parseQueueLockTimes finds the two counters in Prometheus text format.
func parseQueueLockTimes(r io.Reader) *queueLockTimes {
	var t queueLockTimes
	var held, wait bool
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		var dst *float64
		var seen *bool
		switch {
		case strings.HasPrefix(line, metricLockHeld+"{"), strings.HasPrefix(line, metricLockHeld+" "):
			dst, seen = &t.Held, &held
		case strings.HasPrefix(line, metricLockWait+"{"), strings.HasPrefix(line, metricLockWait+" "):
			dst, seen = &t.Wait, &wait
		default:
			continue
		}
		// The value follows the labels (which may hold spaces); the text
		// format (not OpenMetrics) carries no exemplars, and the OTel
		// exporter no timestamps.
		rest := line
		if i := strings.LastIndexByte(line, '}'); i >= 0 {
			rest = line[i+1:]
		} else {
			rest = strings.TrimPrefix(strings.TrimPrefix(line, metricLockHeld), metricLockWait)
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		*dst += v
		*seen = true
	}
	if !held || !wait {
		return nil
	}
	return &t
}

// readProcStats reads /proc/<pid>/status and /proc/<pid>/stat ("self"
// for this process).
func readProcStats(pid string) (procStats, error) {
	var st procStats
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return st, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		switch k {
		case "VmRSS":
			st.RSSKiB = n
		case "VmHWM":
			st.HWMKiB = n
		}
	}
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return st, err
	}
	// Fields after the command name (which may hold spaces) in parens.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return st, errors.New("malformed stat")
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 13 {
		return st, errors.New("short stat")
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	st.CPUSecs = (utime + stime) / clockTicks
	return st, nil
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// profile starts a CPU profile of d in every service, through its admin
// API's /debug/pprof/profile, written to dir/PREFIX-SERVICE.pprof. The
// returned func waits for them all and reports what failed.
func (s *system) profile(ctx context.Context, dir, prefix string, d time.Duration) func() error {
	seconds := max(1, int(d.Round(time.Second)/time.Second))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return func() error { return err }
	}
	errs := make([]error, len(s.procs))
	var wg sync.WaitGroup
	for i, p := range s.procs {
		wg.Go(func() {
			errs[i] = fetchProfile(ctx, p.adminURL+"/debug/pprof/profile?seconds="+strconv.Itoa(seconds),
				filepath.Join(dir, prefix+"-"+p.name+".pprof"), time.Duration(seconds+30)*time.Second)
		})
	}
	return func() error {
		wg.Wait()
		return errors.Join(errs...)
	}
}

// fetchProfile GETs url into path.
func fetchProfile(ctx context.Context, url, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, err := get(ctx, url)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.ReadFrom(body); err != nil {
		f.Close()
		return fmt.Errorf("profile %s: %w", url, err)
	}
	return f.Close()
}

// get GETs url and returns the body of a 200 answer.
func get(ctx context.Context, url string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return resp.Body, nil
}

func (s *system) stats() map[string]procStats {
	out := map[string]procStats{}
	for _, p := range s.procs {
		if st, err := readProcStats(strconv.Itoa(p.cmd.Process.Pid)); err == nil {
			out[p.name] = st
		}
	}
	// After every /proc read, so that a slow answer does not stretch the
	// CPU times that the phase's wall time divides.
	for _, p := range s.procs {
		if st, ok := out[p.name]; ok {
			st.QueueLock = readQueueLockTimes(p.adminURL + "/metrics")
			out[p.name] = st
		}
	}
	return out
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// withDefaultGOMAXPROCS adds GOMAXPROCS=1 to a service's environment env
// unless lookup (this command's environment) has GOMAXPROCS: the services
// run as go tool task run starts them (tools/cmd/devrun), one P per
// process, so that a writer whose P was handed away during a long cgo
// call does not wait for one while it holds the queue file's write lock
// (docs/benchmarks.md). --env GOMAXPROCS=N, appended after, overrides it
// too: of duplicate keys a process gets the last.
func withDefaultGOMAXPROCS(env []string, lookup func(string) (string, bool)) []string {
	if _, set := lookup("GOMAXPROCS"); set {
		return env
	}
	return append(env, "GOMAXPROCS=1")
}

// serviceGOMAXPROCS says what GOMAXPROCS a process started with
// environment env runs with: the last GOMAXPROCS in env (of duplicate keys
// a process gets the last); none, or an empty one, is Go's default.
func serviceGOMAXPROCS(env []string) string {
	v := ""
	for _, kv := range env {
		if k, val, _ := strings.Cut(kv, "="); k == "GOMAXPROCS" {
			v = val
		}
	}
	if v == "" {
		return "Go's default (the CPU count)"
	}
	return v
}
