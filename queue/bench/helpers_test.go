package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"golang.org/x/sys/unix"

	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/sqlite"
	"github.com/orderflow/orderflow/queue/sqlite/cmalloc"
)

// The benchmark starts copies of its own test binary; these variables tell a
// copy what to do. They are the protocol between parent and child, not
// settings for people.
const (
	envRole        = "QUEUE_BENCH_ROLE"              // "consume" or "publish"
	envName        = "QUEUE_BENCH_CHILD_NAME"        // process name, for logs and profiles
	envURL         = "QUEUE_BENCH_CHILD_URL"         // queue URL
	envTopic       = "QUEUE_BENCH_CHILD_TOPIC"       // topic to publish to or consume
	envGroup       = "QUEUE_BENCH_CHILD_GROUP"       // consumer group
	envConcurrency = "QUEUE_BENCH_CHILD_CONCURRENCY" // router concurrency
	envCount       = "QUEUE_BENCH_CHILD_COUNT"       // messages to publish
	envGoroutines  = "QUEUE_BENCH_CHILD_GOROUTINES"  // concurrent Publish callers
	envLatencyOut  = "QUEUE_BENCH_CHILD_LATENCY_OUT" // file for (seq, latency) pairs
)

// envProfileDir, set by a person, makes every child process write a CPU
// profile <dir>/<name>.pprof: the benchmark process's own -cpuprofile does
// not see work done in other processes.
const envProfileDir = "QUEUE_BENCH_CPUPROFILE_DIR"

// payloadSize is the size of every benchmark message's payload. The first 8
// bytes hold a sequence number, the next 8 the publish time (Unix ns).
const payloadSize = 200

func newPayload(seq int) []byte {
	p := make([]byte, payloadSize)
	binary.LittleEndian.PutUint64(p[0:8], uint64(seq))
	for i := 16; i < len(p); i++ {
		p[i] = byte('a' + i%26)
	}
	return p
}

func stampPayload(p []byte, at time.Time) {
	binary.LittleEndian.PutUint64(p[8:16], uint64(at.UnixNano()))
}

func payloadSeq(p []byte) int         { return int(binary.LittleEndian.Uint64(p[0:8])) }
func payloadSentNs(p []byte) int64    { return int64(binary.LittleEndian.Uint64(p[8:16])) }
func envInt(name string, def int) int { return envIntFrom(os.Getenv, name, def) }

func envIntFrom(get func(string) string, name string, def int) int {
	v := get(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
	if err != nil || n <= 0 {
		panic(fmt.Sprintf("%s=%q: want a positive integer", name, v))
	}
	return n
}

// TestBenchHelper is not a test: in a child process started by a benchmark
// (QUEUE_BENCH_ROLE set) it plays that role and exits; otherwise it returns.
func TestBenchHelper(t *testing.T) {
	role := os.Getenv(envRole)
	if role == "" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	cmalloc.KeepFreedMemory(os.LookupEnv, cmalloc.DefaultTrimThreshold) // as the services do
	stopProfile := startChildProfile()
	var err error
	switch role {
	case "consume":
		err = consumeRole(ctx)
	case "publish":
		err = publishRole(ctx)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	stopProfile()
	stop()
	say("hwm %d", ownPeakRSSKiB())
	say("wrote %d", ownWrittenBytes())
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", os.Getenv(envName), err)
		os.Exit(1)
	}
	os.Exit(0)
}

func startChildProfile() func() {
	dir := os.Getenv(envProfileDir)
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, os.Getenv(envName)+".pprof"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "cpu profile:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "cpu profile:", err)
		_ = f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// say writes one protocol line to the parent.
var sayMu sync.Mutex

func say(format string, args ...any) {
	sayMu.Lock()
	defer sayMu.Unlock()
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

// consumeRole handles the topic for the group, acking at once, and reports
// "ready", then "n COUNT LAST_NS" whenever the count changed (every 5ms at
// most), and on SIGTERM "final COUNT". With envLatencyOut set it also writes
// every message's publish→handler latency to that file.
func consumeRole(ctx context.Context) error {
	q, err := queue.Open(ctx, queue.Config{URL: os.Getenv(envURL), Logger: watermill.NewStdLoggerWithOut(os.Stderr, false, false)})
	if err != nil {
		return err
	}
	defer closeQueue(q)
	r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: os.Getenv(envGroup), Concurrency: envInt(envConcurrency, 1)})
	if err != nil {
		return err
	}
	latOut := os.Getenv(envLatencyOut)
	t := newTally(latOut != "")
	r.Handle("bench", os.Getenv(envTopic), t.handle)
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(ctx) }()
	select {
	case <-r.Running():
	case err := <-runErr:
		return fmt.Errorf("router stopped before running: %w", err)
	}
	say("ready")
	// Report only after a handler ran (no timer while idle: the idle-CPU
	// benchmark must measure the queue, not this loop), at most every 5ms.
	var reported int64
	for {
		select {
		case <-t.changed:
			time.Sleep(5 * time.Millisecond)
			if n := t.n.Load(); n != reported {
				reported = n
				say("n %d %d", n, t.lastNs.Load())
			}
			continue
		case err = <-runErr:
		}
		break
	}
	say("final %d", t.n.Load())
	if latOut != "" {
		if werr := t.writeLatencies(latOut); err == nil {
			err = werr
		}
	}
	return err
}

// closeQueue closes q and, on the SQLite backend, reports "lock HELD_NS
// WAIT_NS TRANSACTIONS": how long this process's writer held the queue
// file's write lock and waited for it, and how many write transactions it
// committed.
func closeQueue(q *queue.Queue) {
	_ = q.Close()
	if ws, ok := q.Backend().(interface{ WriteStats() sqlite.WriteStats }); ok {
		s := ws.WriteStats()
		say("lock %d %d %d", s.LockHeld.Nanoseconds(), s.LockWait.Nanoseconds(), s.Transactions)
	}
}

// publishRole publishes COUNT messages from GOROUTINES goroutines, one
// message per Publish, once the parent writes "go"; it reports "ready" and
// then "done FINISH_NS".
func publishRole(ctx context.Context) error {
	q, err := queue.Open(ctx, queue.Config{URL: os.Getenv(envURL), Logger: watermill.NewStdLoggerWithOut(os.Stderr, false, false)})
	if err != nil {
		return err
	}
	defer closeQueue(q)
	goSignal := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if sc.Text() == "go" {
				close(goSignal)
				return
			}
		}
	}()
	say("ready")
	select {
	case <-goSignal:
	case <-ctx.Done():
		return nil
	}
	if err := publishN(ctx, q.Publisher(), os.Getenv(envTopic), envInt(envCount, 1), envInt(envGoroutines, 1)); err != nil {
		return err
	}
	say("done %d", time.Now().UnixNano())
	return nil
}

// publishN publishes n messages of payloadSize bytes, one per Publish call,
// from goroutines concurrent callers.
func publishN(ctx context.Context, pub message.Publisher, topic string, n, goroutines int) error {
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += goroutines {
				if ctx.Err() != nil || firstErr.Load() != nil {
					return
				}
				msg := message.NewMessage(watermill.NewUUID(), newPayload(i))
				if err := pub.Publish(topic, msg); err != nil {
					err = fmt.Errorf("publish message %d: %w", i, err)
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return *p
	}
	return ctx.Err()
}

// publishPaced publishes at rate messages per second for d, stamping each
// payload with the time just before its Publish call. A pool of callers
// keeps one slow commit from holding back the schedule. (64 callers:
// PostgreSQL needs ~10ms per Publish.) It returns how many it published and
// how long each Publish call took, indexed by sequence number (0 when it
// failed).
func publishPaced(ctx context.Context, pub message.Publisher, topic string, rate int, d time.Duration) (int, []time.Duration, error) {
	interval := time.Second / time.Duration(rate)
	total := int(d / interval)
	took := make([]time.Duration, total)
	work := make(chan int, 4096)
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	var published atomic.Int64
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range work {
				p := newPayload(seq)
				at := time.Now()
				stampPayload(p, at)
				if err := pub.Publish(topic, message.NewMessage(watermill.NewUUID(), p)); err != nil {
					err = fmt.Errorf("publish message %d: %w", seq, err)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				took[seq] = time.Since(at)
				published.Add(1)
			}
		}()
	}
	start := time.Now()
	for seq := 0; seq < total && ctx.Err() == nil && firstErr.Load() == nil; seq++ {
		if wait := time.Until(start.Add(time.Duration(seq) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		work <- seq
	}
	close(work)
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return int(published.Load()), took, *p
	}
	return int(published.Load()), took, ctx.Err()
}

// tally counts handled messages and optionally records latencies.
type tally struct {
	n       atomic.Int64
	lastNs  atomic.Int64
	changed chan struct{} // gets a token when n changes

	latency bool
	mu      sync.Mutex
	lat     []latencySample
}

type latencySample struct {
	seq int
	ns  int64
}

func newTally(latency bool) *tally {
	return &tally{latency: latency, changed: make(chan struct{}, 1)}
}

func (t *tally) handle(msg *message.Message) error {
	now := time.Now().UnixNano()
	if t.latency && len(msg.Payload) >= 16 {
		s := latencySample{seq: payloadSeq(msg.Payload), ns: now - payloadSentNs(msg.Payload)}
		t.mu.Lock()
		t.lat = append(t.lat, s)
		t.mu.Unlock()
	}
	for {
		last := t.lastNs.Load()
		if now <= last || t.lastNs.CompareAndSwap(last, now) {
			break
		}
	}
	t.n.Add(1)
	select {
	case t.changed <- struct{}{}:
	default:
	}
	return nil
}

func (t *tally) samples() []latencySample {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.lat)
}

func (t *tally) writeLatencies(path string) error {
	var buf bytes.Buffer
	for _, s := range t.samples() {
		fmt.Fprintf(&buf, "%d %d\n", s.seq, s.ns)
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func readLatencies(path string) ([]latencySample, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []latencySample
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var s latencySample
		if _, err := fmt.Sscanf(line, "%d %d", &s.seq, &s.ns); err != nil {
			return nil, fmt.Errorf("latency file %s: %q: %w", path, line, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// child is a copy of the test binary playing one role.
type child struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *lockedBuffer

	ready  chan struct{}
	exited chan struct{} // closed after Wait returned; waitErr is then set

	count  atomic.Int64 // consumers: messages handled so far
	lastNs atomic.Int64 // consumers: when the last one was handled
	final  atomic.Int64 // consumers: count after shutdown, -1 until known
	doneNs atomic.Int64 // publishers: when the last Publish returned, 0 until then
	hwmKiB atomic.Int64 // peak RSS the child reported just before exiting
	wrote  atomic.Int64 // bytes the child wrote in its life (see ownWrittenBytes)
	// SQLite: how long the child's writer held and waited for the queue
	// file's write lock in all, reported as it closed the queue.
	lockHeldNs, lockWaitNs atomic.Int64
	writeTxs               atomic.Int64 // SQLite: write transactions committed
	waitErr                error
}

// startChild starts the test binary as role with env added to the
// benchmark's environment. The child dies with the benchmark (SIGKILL on
// the parent's death) and is killed, if still running, when b ends.
func startChild(b testing.TB, name, role string, env ...string) *child {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchHelper$", "-test.timeout=0")
	cmd.Env = append(os.Environ(), envRole+"="+role, envName+"="+name)
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c := &child{name: name, cmd: cmd, stderr: &lockedBuffer{}, ready: make(chan struct{}), exited: make(chan struct{})}
	c.final.Store(-1)
	cmd.Stderr = c.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatalf("start %s: %v", name, err)
	}
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		b.Fatalf("start %s: %v", name, err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", name, err)
	}
	go c.read(stdout)
	b.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			_ = cmd.Process.Kill()
			<-c.exited
		}
		if b.Failed() {
			b.Logf("%s stderr:\n%s", name, c.stderr.String())
		}
	})
	return c
}

func (c *child) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	readyOnce := sync.Once{}
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		num := func(i int) int64 {
			if i >= len(f) {
				return 0
			}
			n, _ := strconv.ParseInt(f[i], 10, 64)
			return n
		}
		switch f[0] {
		case "ready":
			readyOnce.Do(func() { close(c.ready) })
		case "n":
			c.count.Store(num(1))
			c.lastNs.Store(num(2))
		case "final":
			c.final.Store(num(1))
		case "done":
			c.doneNs.Store(num(1))
		case "hwm":
			c.hwmKiB.Store(num(1))
		case "wrote":
			c.wrote.Store(num(1))
		case "lock":
			c.lockHeldNs.Store(num(1))
			c.lockWaitNs.Store(num(2))
			c.writeTxs.Store(num(3))
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	c.waitErr = c.cmd.Wait()
	close(c.exited)
}

func (c *child) hasExited() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// waitReady waits for every child's "ready" line.
func waitReady(b testing.TB, children ...*child) {
	b.Helper()
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	for _, c := range children {
		select {
		case <-c.ready:
		case <-c.exited:
			b.Fatalf("%s exited before it was ready: %v\n%s", c.name, c.waitErr, c.stderr.String())
		case <-deadline.C:
			b.Fatalf("%s not ready after 60s\n%s", c.name, c.stderr.String())
		}
	}
}

// signalGo tells publishers to start.
func signalGo(b testing.TB, pubs ...*child) {
	b.Helper()
	for _, p := range pubs {
		if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
			b.Fatalf("start %s: %v", p.name, err)
		}
	}
}

// stop sends SIGTERM and waits for the child to exit; a child that takes
// longer than a minute is killed and fails b.
func stopChildren(b testing.TB, children ...*child) {
	b.Helper()
	for _, c := range children {
		if !c.hasExited() {
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, c := range children {
		select {
		case <-c.exited:
		case <-time.After(time.Minute):
			_ = c.cmd.Process.Kill()
			<-c.exited
			b.Errorf("%s did not stop within a minute of SIGTERM", c.name)
		}
		if c.waitErr != nil {
			b.Errorf("%s: %v\n%s", c.name, c.waitErr, c.stderr.String())
		}
	}
}

// waitExited waits for children that finish by themselves (publishers).
func waitExited(b testing.TB, timeout time.Duration, children ...*child) {
	b.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for _, c := range children {
		select {
		case <-c.exited:
			if c.waitErr != nil {
				b.Fatalf("%s: %v\n%s", c.name, c.waitErr, c.stderr.String())
			}
		case <-deadline.C:
			b.Fatalf("%s still running after %s\n%s", c.name, timeout, c.stderr.String())
		}
	}
}

// peakRSSKiB is the child's peak resident set size; valid once it exited.
//
// It is the VmHWM the child read from /proc/self/status just before exiting,
// not ProcessState's Rusage.Maxrss: Go starts children with vfork, and on
// exec Linux folds the high-water mark of the memory the child shared with
// its parent into ru_maxrss, so Maxrss reports max(parent's peak, child's
// peak) — the benchmark process's size, not the child's. Maxrss is the
// fallback for a child that could not report.
func (c *child) peakRSSKiB() int64 {
	if n := c.hwmKiB.Load(); n > 0 {
		return n
	}
	if c.cmd.ProcessState == nil {
		return 0
	}
	if ru, ok := c.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss // KiB on Linux
	}
	return 0
}

// ownWrittenBytes is how many bytes this process handed to write system
// calls ("wchar" in /proc/self/io): for a queue process, mostly the pages
// SQLite wrote to the WAL and, in checkpoints, to the database file.
func ownWrittenBytes() int64 { return procNumber("/proc/self/io", "wchar:") }

// ownPeakRSSKiB is this process's VmHWM from /proc/self/status, in KiB.
func ownPeakRSSKiB() int64 { return procNumber("/proc/self/status", "VmHWM:") }

// procNumber is the first number after key on its line of the /proc file,
// 0 when the file or the key is not there.
func procNumber(file, key string) int64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// waitConsumed waits until the consumers together handled total messages
// and returns when the last of them was handled (Unix ns). It fails b if a
// consumer exits or timeout passes first.
func waitConsumed(b testing.TB, consumers []*child, total int, timeout time.Duration) int64 {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var sum, last int64
		for _, c := range consumers {
			if c.hasExited() {
				b.Fatalf("%s exited while consuming: %v\n%s", c.name, c.waitErr, c.stderr.String())
			}
			sum += c.count.Load()
			last = max(last, c.lastNs.Load())
		}
		if sum >= int64(total) {
			return last
		}
		if time.Now().After(deadline) {
			b.Fatalf("consumed %d of %d messages in %s", sum, total, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// cpuTicks is utime+stime of a process in clock ticks, from /proc.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after its ')'
	// start at field 3 (state). utime and stime are fields 14 and 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime %q %q", pid, f[11], f[12])
	}
	return ut + st, nil
}

// cpuTime is the CPU time a running process has used so far, to the
// nanosecond: its process CPU clock (CLOCK_PROCESS_CPUTIME_ID of another
// process, clock id -(pid+1)*8+2 as clock_getcpuclockid makes it). /proc's
// utime and stime count 10 ms ticks, too coarse for an idle process: four
// idle consumers used less than one tick each in five seconds and showed
// as 0.0 %.
func cpuTime(pid int) (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(int32((^pid)<<3|2), &ts); err != nil {
		return 0, fmt.Errorf("CPU clock of process %d: %w", pid, err)
	}
	return time.Duration(ts.Nano()), nil
}

// sumTicks adds up the CPU time of running children (0 for exited ones).
func sumTicks(children []*child) int64 {
	var n int64
	for _, c := range children {
		if t, err := cpuTicks(c.pid()); err == nil {
			n += t
		}
	}
	return n
}

// exitTicks is the CPU time of an exited child, in clock ticks.
func (c *child) exitTicks() int64 {
	if c.cmd.ProcessState == nil {
		return 0
	}
	cpu := c.cmd.ProcessState.UserTime() + c.cmd.ProcessState.SystemTime()
	return int64(cpu * clockTicks / time.Second)
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// percentile returns the p-th percentile (0..100] of sorted values, by the
// nearest-rank method.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}
