package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary plays every part: devrun itself (DEVRUN_TEST_ROLE=devrun,
// running main) and the processes devrun starts, which are symbolic links to
// it named after the part they play (standIns).
func TestMain(m *testing.M) {
	if part, ok := standIns[filepath.Base(os.Args[0])]; ok {
		part(filepath.Base(os.Args[0]), os.Getenv("DEVRUN_TEST_DIR"))
		os.Exit(0)
	}
	if os.Getenv("DEVRUN_TEST_ROLE") == "devrun" {
		main() // os.Args[1:] are devrun's flags; main exits
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// standIns are the processes the tests let devrun start, by name. Each
// notes in dir that it started (with the environment devrun gave it), and
// how many times: NAME.started is the latest start, NAME.started.N the Nth.
var standIns = map[string]func(name, dir string){
	// order and inventory run until SIGTERM, note it and exit 0.
	"order":     untilSIGTERM,
	"inventory": untilSIGTERM,
	// stubborn ignores SIGTERM, so devrun has to kill it.
	"stubborn": func(name, dir string) {
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
		started(name, dir)
		time.Sleep(time.Minute)
	},
	// crasher exits 3 on its own once order has started, every time: a
	// service that cannot start.
	"crasher": func(name, dir string) {
		started(name, dir)
		waitForOrder(dir)
		fmt.Println("listen tcp 127.0.0.1:8082: bind: address already in use")
		os.Exit(3)
	},
	// crashonce exits 3 once order has started, the first time only (a
	// crash fault, off after the restart); then it runs until SIGTERM.
	"crashonce": func(name, dir string) {
		if started(name, dir) > 1 {
			untilSIGTERMStarted(name, dir)
			return
		}
		waitForOrder(dir)
		os.Exit(3)
	},
	// quitter exits 0 on its own once order has started.
	"quitter": func(name, dir string) {
		started(name, dir)
		waitForOrder(dir)
	},
	// quitnow exits 0 as soon as it has started.
	"quitnow": func(name, dir string) { started(name, dir) },
	// badstop exits 3 on SIGTERM or SIGINT: a process that fails as it is
	// stopped.
	"badstop": func(name, dir string) {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		started(name, dir)
		select {
		case <-sig:
			note(dir, name+".stopped", "")
			os.Exit(3)
		case <-time.After(time.Minute):
		}
	},
}

func waitForOrder(dir string) {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "order.started")); err == nil {
			return
		}
	}
}

func untilSIGTERM(name, dir string) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	started(name, dir)
	waitSIGTERM(name, dir, sig)
}

// untilSIGTERMStarted is untilSIGTERM for a process that noted its start.
func untilSIGTERMStarted(name, dir string) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	note(dir, name+".running", "")
	waitSIGTERM(name, dir, sig)
}

func waitSIGTERM(name, dir string, sig chan os.Signal) {
	select {
	case <-sig:
		note(dir, name+".sigterm", "")
	case <-time.After(time.Minute):
	}
}

// started notes this start of name (its environment and pid) and returns
// how many times name has started, this one included.
func started(name, dir string) int {
	fmt.Printf("hello from %s\n", name)
	n := 1
	if b, err := os.ReadFile(filepath.Join(dir, name+".starts")); err == nil {
		n += strings.Count(string(b), "\n")
	}
	content := fmt.Sprintf("GOMAXPROCS=%s\nQUEUE_URL=%s\nDATA_DIR=%s\nHTTP_ADDR=%s\nPID=%d\n",
		os.Getenv("GOMAXPROCS"), os.Getenv("QUEUE_URL"), os.Getenv("DATA_DIR"), os.Getenv("HTTP_ADDR"), os.Getpid())
	note(dir, name+".starts", strings.Repeat("start\n", n))
	note(dir, fmt.Sprintf("%s.started.%d", name, n), content)
	note(dir, name+".started", content)
	return n
}

func note(dir, file, content string) {
	tmp := filepath.Join(dir, file+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		panic(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, file)); err != nil {
		panic(err)
	}
}

// devrunProcess is devrun started by a test, with its stand-ins in binDir.
type devrunProcess struct {
	cmd     *exec.Cmd
	notes   string // where the stand-ins note what happened to them
	dataDir string
	out     *syncBuffer
	done    chan struct{}
	err     error
}

// startDevrun starts devrun in a child process with links to the test
// binary named links in its bin directory, and flags.
func startDevrun(t *testing.T, links []string, flags ...string) *devrunProcess {
	t.Helper()
	return startDevrunEnv(t, nil, links, flags...)
}

// startDevrunEnv is startDevrun with env added to devrun's environment.
func startDevrunEnv(t *testing.T, env []string, links []string, flags ...string) *devrunProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	binDir, notes, dataDir := filepath.Join(dir, "bin"), filepath.Join(dir, "notes"), filepath.Join(dir, "data")
	for _, d := range []string{binDir, notes} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range links {
		if err := os.Symlink(exe, filepath.Join(binDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(exe, append([]string{"--data-dir", dataDir, "--bin-dir", binDir}, flags...)...)
	for _, kv := range os.Environ() {
		// What devrun sets for the services unless given.
		if !strings.HasPrefix(kv, "GOMAXPROCS=") && !strings.HasPrefix(kv, "QUEUE_URL=") && !strings.HasPrefix(kv, "HTTP_ADDR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Env = append(cmd.Env, "DEVRUN_TEST_ROLE=devrun", "DEVRUN_TEST_DIR="+notes)
	// A process group of its own, as under a shell, so that a test can
	// signal it like a terminal's Ctrl-C does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &devrunProcess{cmd: cmd, notes: notes, dataDir: dataDir, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // devrun and its processes
			<-p.done
		}
	})
	return p
}

// waitNote waits for a stand-in's note and returns its content.
func (p *devrunProcess) waitNote(t *testing.T, file string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(p.notes, file))
		if err == nil {
			return string(b)
		}
		select {
		case <-p.done:
			t.Fatalf("devrun exited (%v) before %s; its output:\n%s", p.err, file, p.out)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 30 s; devrun's output:\n%s", file, p.out)
		}
	}
}

// wait waits for devrun to exit and returns its exit status.
func (p *devrunProcess) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("devrun still running %s later; its output:\n%s", within, p.out)
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode()
	default:
		t.Fatalf("wait for devrun: %v", p.err)
		return -1
	}
}

func (p *devrunProcess) noted(file string) bool {
	_, err := os.Stat(filepath.Join(p.notes, file))
	return err == nil
}

// starts is how many times the stand-in name has started.
func (p *devrunProcess) starts(name string) int {
	b, _ := os.ReadFile(filepath.Join(p.notes, name+".starts"))
	return strings.Count(string(b), "\n")
}

// waitOutput waits until devrun's output contains want.
func (p *devrunProcess) waitOutput(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.out.String(), want) {
		select {
		case <-p.done:
			t.Fatalf("devrun exited (%v) before saying %q; its output:\n%s", p.err, want, p.out)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("devrun did not say %q within 30 s; its output:\n%s", want, p.out)
		}
	}
}

// interrupt sends devrun SIGINT and wants it to exit 0.
func (p *devrunProcess) interrupt(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	// A generous bound, to catch a hang only.
	if status := p.wait(t, 30*time.Second); status != 0 {
		t.Fatalf("devrun after SIGINT: exit status %d, want 0; output:\n%s", status, p.out)
	}
}

func wantOutput(t *testing.T, out string, res ...string) {
	t.Helper()
	for _, re := range res {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("devrun's output:\n%s\nwant a match for %s", out, re)
		}
	}
}

// Ctrl-C (SIGINT to devrun) stops every process with SIGTERM, and devrun
// exits 0 once they have: what `go tool task run` relies on.
func TestCtrlCStopsEveryProcessAndExitsZero(t *testing.T) {
	p := startDevrunEnv(t, []string{"ORDER_HTTP_ADDR=127.0.0.1:9080", "INVENTORY_GOMAXPROCS=3"},
		[]string{"order", "inventory"}, "--services", "order,inventory,console")
	env := p.waitNote(t, "order.started")
	invEnv := p.waitNote(t, "inventory.started")
	// <NAME>_<VAR> is <VAR> for that process alone.
	if !strings.Contains(env, "HTTP_ADDR=127.0.0.1:9080\n") || !strings.Contains(invEnv, "HTTP_ADDR=\n") {
		t.Errorf("ORDER_HTTP_ADDR: order's environment:\n%s\ninventory's:\n%s\nwant HTTP_ADDR set for order alone", env, invEnv)
	}
	if !strings.Contains(invEnv, "GOMAXPROCS=3\n") {
		t.Errorf("INVENTORY_GOMAXPROCS=3: inventory's environment:\n%s\nwant GOMAXPROCS=3", invEnv)
	}

	dataDir, err := filepath.Abs(p.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"GOMAXPROCS=1\n", "QUEUE_URL=sqlite://" + filepath.Join(dataDir, "queue.db") + "\n", "DATA_DIR=" + dataDir + "\n"} {
		if !strings.Contains(env, want) {
			t.Errorf("order's environment:\n%s\nwant it to contain %q", env, want)
		}
	}

	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if status := p.wait(t, 30*time.Second); status != 0 {
		t.Errorf("devrun after SIGINT: exit status %d, want 0; output:\n%s", status, p.out)
	}
	for _, name := range []string{"order", "inventory"} {
		if !p.noted(name + ".sigterm") {
			t.Errorf("%s did not get SIGTERM", name)
		}
	}
	out := p.out.String()
	for _, re := range []string{
		`devrun: console not built \(.*\), skipping`,
		`(?m)^order +\| hello from order$`,
		`(?m)^inventory \| hello from inventory$`,
		`(?m)^order +\| exited: ok$`,
		`(?m)^inventory \| exited: ok$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("devrun's output:\n%s\nwant a match for %s", out, re)
		}
	}
}

// A process that does not stop within --grace is killed, and devrun still
// exits 0 after Ctrl-C.
func TestCtrlCKillsAProcessThatIgnoresSIGTERM(t *testing.T) {
	// --grace bounds order too: 2 s leaves a loaded CI machine room to
	// deliver its SIGTERM and let it note it before the kill.
	p := startDevrun(t, []string{"order", "stubborn"}, "--services", "order,stubborn", "--grace", "2s")
	p.waitNote(t, "order.started")
	p.waitNote(t, "stubborn.started")
	start := time.Now()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if status := p.wait(t, 30*time.Second); status != 0 {
		t.Errorf("devrun after SIGINT: exit status %d, want 0; output:\n%s", status, p.out)
	}
	if !p.noted("order.sigterm") {
		t.Error("order did not get SIGTERM")
	}
	if out := p.out.String(); !regexp.MustCompile(`(?m)^stubborn \| exited: signal: killed$`).MatchString(out) {
		t.Errorf("devrun's output:\n%s\nwant stubborn killed", out)
	}
	t.Logf("stopped %s after SIGINT", time.Since(start).Round(time.Millisecond))
}

// A process that fails (the crash faults exit 3) is started again after
// --restart-delay, and so is one killed by a signal devrun did not send,
// after twice the delay; the others keep running throughout.
func TestAFailedProcessIsRestartedAndTheOthersKeepRunning(t *testing.T) {
	p := startDevrun(t, []string{"order", "crashonce"}, "--services", "order,crashonce", "--restart-delay", "10ms")
	p.waitNote(t, "order.started")
	p.waitNote(t, "crashonce.running") // its second start: it runs
	p.waitOutput(t, "devrun: crashonce exited with status 3; restarting in 10ms (restart 1)")

	// SIGKILL from someone else: a failure too.
	second := p.waitNote(t, "crashonce.started.2")
	var pid int
	if _, err := fmt.Sscanf(second[strings.Index(second, "PID="):], "PID=%d", &pid); err != nil {
		t.Fatalf("crashonce's pid in %q: %v", second, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.waitNote(t, "crashonce.started.3")
	p.waitOutput(t, "devrun: crashonce was killed by signal 9 (killed); restarting in 20ms (restart 2)")

	if p.noted("order.sigterm") || p.starts("order") != 1 {
		t.Errorf("order was stopped (%v) or started again (%d starts) while crashonce was restarted; output:\n%s",
			p.noted("order.sigterm"), p.starts("order"), p.out)
	}
	p.interrupt(t)
	if !p.noted("order.sigterm") || !p.noted("crashonce.sigterm") {
		t.Errorf("SIGTERM: order %v, crashonce %v; want both", p.noted("order.sigterm"), p.noted("crashonce.sigterm"))
	}
	wantOutput(t, p.out.String(),
		`(?m)^crashonce \| exited: exit status 3$`,
		`(?m)^devrun: \(status 3 is how the crash_\* fault flags exit; .*crash flag set through its admin API is off again\)$`,
		`(?m)^crashonce \| exited: signal: killed$`,
		`(?m)^crashonce \| exited: ok$`,
		`(?m)^order +\| exited: ok$`,
	)
	if n := p.starts("crashonce"); n != 3 {
		t.Errorf("crashonce started %d times, want 3", n)
	}
}

// A process that keeps failing is restarted --restart-limit times; at the
// next failure devrun stops the others and exits 1, its error in view
// (--restart-limit 0: at the first failure).
func TestAProcessThatKeepsFailingStopsEverything(t *testing.T) {
	for _, tc := range []struct {
		limit string
		want  []string
	}{
		{"0", []string{`(?m)^devrun: crasher exited with status 3 \(restarts are off: --restart-limit 0\); stopping the others$`}},
		{"2", []string{
			`(?m)^devrun: crasher exited with status 3; restarting in 10ms \(restart 1\)$`,
			`(?m)^devrun: crasher exited with status 3; restarting in 20ms \(restart 2\)$`,
			`(?m)^devrun: crasher exited with status 3: 3 failures within 30s, more than --restart-limit 2 allows; giving up and stopping the others$`,
		}},
	} {
		t.Run("limit "+tc.limit, func(t *testing.T) {
			p := startDevrun(t, []string{"order", "crasher"}, "--services", "order,crasher", "--restart-delay", "10ms", "--restart-limit", tc.limit)
			p.waitNote(t, "order.started")
			if status := p.wait(t, 30*time.Second); status != 1 {
				t.Errorf("devrun after crasher kept failing: exit status %d, want 1; output:\n%s", status, p.out)
			}
			if !p.noted("order.sigterm") {
				t.Error("order did not get SIGTERM")
			}
			limit, _ := strconv.Atoi(tc.limit)
			if n := p.starts("crasher"); n != limit+1 {
				t.Errorf("crasher started %d times, want %d", n, limit+1)
			}
			wantOutput(t, p.out.String(), append(tc.want,
				`(?m)^crasher \| listen tcp 127.0.0.1:8082: bind: address already in use$`,
				`(?m)^crasher \| exited: exit status 3$`,
				`(?m)^order   \| exited: ok$`)...)
		})
	}
}

// Ctrl-C while a failed process waits to be restarted stops everything at
// once (not after the delay) and starts nothing again.
func TestCtrlCDuringARestartDelayStartsNothingAgain(t *testing.T) {
	p := startDevrun(t, []string{"order", "crasher"}, "--services", "order,crasher", "--restart-delay", "1h")
	p.waitNote(t, "order.started")
	p.waitOutput(t, "devrun: crasher exited with status 3; restarting in 1h0m0s (restart 1)")
	p.interrupt(t) // within 30 s: not after the hour
	if !p.noted("order.sigterm") {
		t.Error("order did not get SIGTERM")
	}
	if n := p.starts("crasher"); n != 1 {
		t.Errorf("crasher started %d times, want 1", n)
	}
}

// Ctrl-C in a terminal sends SIGINT to devrun and to every process it
// started (one process group): a process that fails of it, even before
// devrun has begun to stop, is not restarted, and devrun exits 0. order's
// stand-in dies of SIGINT (it only handles SIGTERM), badstop exits 3.
func TestNoRestartWhenCtrlCReachesTheProcessesToo(t *testing.T) {
	p := startDevrun(t, []string{"order", "badstop"}, "--services", "order,badstop")
	p.waitNote(t, "order.started")
	p.waitNote(t, "badstop.started")
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGINT); err != nil { // its group
		t.Fatal(err)
	}
	if status := p.wait(t, 30*time.Second); status != 0 {
		t.Fatalf("devrun after SIGINT to its group: exit status %d, want 0; output:\n%s", status, p.out)
	}
	out := p.out.String()
	wantOutput(t, out, `(?m)^badstop \| exited: exit status 3$`, `(?m)^order +\| exited: signal: interrupt$`)
	if a, b := p.starts("order"), p.starts("badstop"); a != 1 || b != 1 {
		t.Errorf("order started %d times, badstop %d, want once each; output:\n%s", a, b, out)
	}
}

// A process that exits 0 on its own is left stopped (compose's
// on-failure); the others keep running.
func TestAProcessThatExitsZeroStaysStopped(t *testing.T) {
	p := startDevrun(t, []string{"order", "quitter"}, "--services", "order,quitter", "--restart-delay", "0s")
	p.waitNote(t, "order.started")
	p.waitOutput(t, "devrun: quitter exited with status 0 on its own; leaving it stopped")
	if p.noted("order.sigterm") {
		t.Error("order got SIGTERM when quitter exited 0")
	}
	p.interrupt(t)
	if !p.noted("order.sigterm") {
		t.Error("order did not get SIGTERM")
	}
	if n := p.starts("quitter"); n != 1 {
		t.Errorf("quitter started %d times, want 1", n)
	}
}

// When every process has exited 0 on its own, devrun ends too, with 0.
func TestDevrunEndsWhenEveryProcessHasExitedZero(t *testing.T) {
	p := startDevrun(t, []string{"quitnow"}, "--services", "quitnow")
	if status := p.wait(t, 30*time.Second); status != 0 {
		t.Errorf("exit status %d, want 0; output:\n%s", status, p.out)
	}
	wantOutput(t, p.out.String(), `(?m)^devrun: quitnow exited with status 0 on its own; leaving it stopped`, `(?m)^devrun: every process has stopped$`)
}

func TestChildEnv(t *testing.T) {
	environ := []string{"PATH=/bin", "HTTP_ADDR=127.0.0.1:1", "ORDER_HTTP_ADDR=127.0.0.1:9080", "PAYMENT_LOG_LEVEL=debug",
		"ORDER_QUEUE_URL=sqlite:///elsewhere.db", "ORDER_=x", "ORDERS_X=y"}
	get := func(env []string, key string) string {
		v := ""
		for _, kv := range env { // the last one wins, as in os/exec
			if k, val, _ := strings.Cut(kv, "="); k == key {
				v = val
			}
		}
		return v
	}
	order := childEnv("order", environ, "/data")
	for key, want := range map[string]string{
		"HTTP_ADDR": "127.0.0.1:9080", "QUEUE_URL": "sqlite:///elsewhere.db", "DATA_DIR": "/data", "GOMAXPROCS": "1",
		"ORDER_HTTP_ADDR": "127.0.0.1:9080", "LOG_LEVEL": "", "": "", "S_X": "", "PATH": "/bin",
	} {
		if got := get(order, key); got != want {
			t.Errorf("order: %s=%q, want %q", key, got, want)
		}
	}
	payment := childEnv("payment", environ, "/data")
	for key, want := range map[string]string{
		"HTTP_ADDR": "127.0.0.1:1", "QUEUE_URL": "sqlite:///data/queue.db", "LOG_LEVEL": "debug",
	} {
		if got := get(payment, key); got != want {
			t.Errorf("payment: %s=%q, want %q", key, got, want)
		}
	}
}

func TestRunWithoutBinariesOrWithHelp(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	err := run(context.Background(), []string{"--data-dir", filepath.Join(dir, "data"), "--bin-dir", filepath.Join(dir, "bin")}, &out)
	if err == nil || !strings.Contains(err.Error(), "nothing to run") {
		t.Errorf("no binaries: got %v, want an error saying there is nothing to run", err)
	}
	if err := run(context.Background(), []string{"--help"}, &bytes.Buffer{}); err != nil {
		t.Errorf("--help: got %v, want no error", err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--services", " , "}, "--services names no process"},
		{[]string{"--restart-limit", "-1"}, "--restart-limit -1: must not be negative"},
		{[]string{"--restart-delay", "-1s"}, "--restart-delay -1s: must not be negative"},
		{[]string{"--restart-window", "0s"}, "--restart-window 0s: must be positive"},
		{[]string{"--grace", "-1s"}, "--grace -1s: must not be negative"},
		{[]string{"stray"}, "unexpected arguments"},
	} {
		if err := run(context.Background(), tc.args, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q): got %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the writer goroutines of exec.Cmd
// and the test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
