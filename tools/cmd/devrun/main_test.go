//go:build unix && !solaris && !illumos

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
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/orderflow/orderflow/pkg/logtest"
)

// The test binary plays every part: devrun itself (DEVRUN_TEST_ROLE=devrun,
// running main) and the processes devrun starts, which are symbolic links to
// it named after the part they play (standIns).
func TestMain(m *testing.M) {
	name := filepath.Base(os.Args[0])
	part, ok := standIns[name]
	if !ok {
		part, ok = platformStandIns[name]
	}
	if ok {
		part(name, os.Getenv("DEVRUN_TEST_DIR"))
		os.Exit(0)
	}
	if os.Getenv("DEVRUN_TEST_PARENT") == "1" {
		devrunsParent() // starts devrun as its child, until killed
		os.Exit(0)
	}
	if os.Getenv("DEVRUN_TEST_ROLE") == "devrun" {
		if os.Getenv("DEVRUN_TEST_NOHUP") == "1" {
			signal.Ignore(syscall.SIGHUP) // as nohup leaves it
		}
		main() // os.Args[1:] are devrun's flags; main exits
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
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
	// slowstop begins a slow stop at its first SIGTERM, as a service
	// waiting for its handlers does, and ends it at the second, as a
	// service's forced stop does.
	"slowstop": func(name, dir string) {
		sig := make(chan os.Signal, 2)
		signal.Notify(sig, syscall.SIGTERM)
		started(name, dir)
		waitSIGTERM(name, dir, sig)
		select {
		case <-sig:
			note(dir, name+".forced", "")
			os.Exit(143)
		case <-time.After(time.Minute):
		}
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
	// Its handler is in place before it notes a start: the test stops
	// devrun as soon as the third start is noted, and a SIGTERM before
	// signal.Notify killed it ("signal: terminated", once in CI).
	"crashonce": func(name, dir string) {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		if started(name, dir) > 1 {
			note(dir, name+".running", "")
			waitSIGTERM(name, dir, sig)
			return
		}
		signal.Stop(sig)
		waitForOrder(dir)
		os.Exit(3)
	},
	// vanisher takes its binary away (as a rebuild does for a moment) and
	// exits 3 the first time; then it runs until SIGTERM.
	"vanisher": func(name, dir string) {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		if started(name, dir) > 1 {
			waitSIGTERM(name, dir, sig)
			return
		}
		if err := os.Rename(os.Args[0], os.Args[0]+".away"); err != nil {
			fmt.Println("rename:", err)
		}
		os.Exit(3)
	},
	// quitter exits 0 on its own once order has started.
	"quitter": func(name, dir string) {
		started(name, dir)
		waitForOrder(dir)
	},
	// quitnow exits 0 as soon as it has started.
	"quitnow": func(name, dir string) { started(name, dir) },
	// failnow exits 3 at once.
	"failnow": func(name, dir string) {
		started(name, dir)
		os.Exit(3)
	},
	// badstop exits 3 on SIGTERM or SIGINT: a process that fails as it is
	// stopped. It notes the signal ("terminated", "interrupt").
	"badstop": func(name, dir string) {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		started(name, dir)
		select {
		case s := <-sig:
			note(dir, name+".stopped", s.String())
			os.Exit(3)
		case <-time.After(time.Minute):
		}
	},
}

// devrunsParent stands for what starts devrun (Task, a shell): it starts
// devrun with its own flags and environment, notes devrun's pid in
// devrun.pid and waits for it.
func devrunsParent() {
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DEVRUN_TEST_PARENT=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "devrun's parent:", err)
		os.Exit(1)
	}
	note(os.Getenv("DEVRUN_TEST_DIR"), "devrun.pid", strconv.Itoa(cmd.Process.Pid))
	_ = cmd.Wait()
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
	out     *logtest.Buffer
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
	return startDevrunWith(t, env, nil, links, flags...)
}

// startDevrunWith is startDevrunEnv with devrun's output going to out
// (nil: p.out).
func startDevrunWith(t *testing.T, env []string, out *os.File, links []string, flags ...string) *devrunProcess {
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
	// signal it like a terminal's Ctrl-C does (ctrlC). devrun's processes
	// are not in it: devrun gives each a group of its own.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &devrunProcess{cmd: cmd, notes: notes, dataDir: dataDir, out: &logtest.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if out != nil {
		cmd.Stdout, cmd.Stderr = out, out
	}
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
			if !t.Failed() {
				return // devrun stopped its processes, or the test saw them gone
			}
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // devrun
			<-p.done
		}
		p.killStandIns()
	})
	return p
}

// killStandIns SIGKILLs the process groups of p's stand-ins that still
// run: devrun does not stop them when it is killed (on Linux it sends
// them SIGTERM, which stubborn ignores), nor when a test went wrong.
func (p *devrunProcess) killStandIns() {
	files, _ := filepath.Glob(filepath.Join(p.notes, "*.started.*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || strings.HasSuffix(f, ".tmp") {
			continue
		}
		if pid, ok := pidIn(string(b)); ok && p.isStandIn(pid) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
}

// isStandIn says whether pid is (still) one of p's stand-ins, leading a
// process group of its own as devrun started it, and not a process that
// took over its pid.
func (p *devrunProcess) isStandIn(pid int) bool {
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		return false
	}
	if _, err := os.Stat("/proc/self/environ"); err != nil {
		return true // no /proc to look further
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	return err == nil && bytes.Contains(env, []byte("DEVRUN_TEST_DIR="+p.notes+"\x00"))
}

// pidIn returns the PID=… of a stand-in's start note.
func pidIn(note string) (int, bool) {
	for line := range strings.Lines(note) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "PID="); ok {
			pid, err := strconv.Atoi(v)
			return pid, err == nil && pid > 0
		}
	}
	return 0, false
}

// mustPID is pidIn for a note that has a pid.
func mustPID(t *testing.T, name, note string) int {
	t.Helper()
	pid, ok := pidIn(note)
	if !ok {
		t.Fatalf("no PID in %s's start note:\n%s", name, note)
	}
	return pid
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
			// devrun may have ended (exit 1 at once with
			// --restart-limit 0) after the note was written and
			// before this looked again: once more, for the last time.
			if b, err := os.ReadFile(filepath.Join(p.notes, file)); err == nil {
				return string(b)
			}
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
			// It may have said it just before it ended: once more.
			if strings.Contains(p.out.String(), want) {
				return
			}
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

// ctrlC sends SIGINT to devrun's process group, as a terminal's Ctrl-C
// does to its foreground group, and wants devrun to exit 0.
func (p *devrunProcess) ctrlC(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if status := p.wait(t, 30*time.Second); status != 0 {
		t.Fatalf("devrun after SIGINT to its group: exit status %d, want 0; output:\n%s", status, p.out)
	}
}

// wantOwnGroup checks that devrun started the stand-in name (pid) in a
// process group of its own, out of reach of a Ctrl-C to devrun's.
func (p *devrunProcess) wantOwnGroup(t *testing.T, name string, pid int) {
	t.Helper()
	pgid, err := syscall.Getpgid(pid)
	if err != nil {
		t.Fatalf("%s (pid %d): %v", name, pid, err)
	}
	if pgid != pid {
		t.Errorf("%s (pid %d) is in process group %d (devrun's: %d), want one of its own", name, pid, pgid, p.cmd.Process.Pid)
	}
}

// wantStoppedBySIGTERM checks that badstop was stopped by devrun's
// SIGTERM, not by a SIGINT of its own.
func (p *devrunProcess) wantStoppedBySIGTERM(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.notes, "badstop.stopped"))
	if err != nil {
		t.Errorf("badstop was not stopped by a signal: %v", err)
	} else if got := string(b); got != "terminated" {
		t.Errorf("badstop was stopped by %q, want devrun's SIGTERM (terminated)", got)
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

// A closed terminal sends SIGHUP: devrun stops every process as for
// Ctrl-C and exits 0.
func TestAHangupStopsEveryProcessAndExitsZero(t *testing.T) {
	p := startDevrun(t, []string{"order", "inventory"}, "--services", "order,inventory")
	p.waitNote(t, "order.started")
	p.waitNote(t, "inventory.started")
	p.wantEveryProcessStoppedOn(t, syscall.SIGHUP, "order", "inventory")
}

// Under nohup (SIGHUP ignored when devrun starts) a closed terminal stops
// nothing: devrun keeps the ignore, and a later SIGINT still stops all.
func TestUnderNohupAHangupStopsNothing(t *testing.T) {
	p := startDevrunEnv(t, []string{"DEVRUN_TEST_NOHUP=1"}, []string{"order", "inventory"}, "--services", "order,inventory")
	p.waitNote(t, "order.started")
	p.waitNote(t, "inventory.started")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		t.Fatalf("devrun under nohup ended on SIGHUP (%v), want it running; output:\n%s", p.err, p.out)
	case <-time.After(500 * time.Millisecond): // time for it to end, if it would
	}
	if p.noted("order.sigterm") || p.noted("inventory.sigterm") {
		t.Error("a process got SIGTERM after a SIGHUP under nohup, want none")
	}
	p.wantEveryProcessStoppedOn(t, os.Interrupt, "order", "inventory")
}

// Output nobody reads any more (devrun piped into tee, which Ctrl-C ended
// first) does not end devrun by SIGPIPE halfway through the stop: it
// still stops every process and exits 0.
func TestAStopWritingToAClosedPipeGoesToTheEnd(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := startDevrunWith(t, nil, w, []string{"order", "inventory"}, "--services", "order,inventory")
	_ = w.Close() // devrun has its own copy
	p.waitNote(t, "order.started")
	p.waitNote(t, "inventory.started")
	_ = r.Close() // the reader is gone: devrun's next write breaks the pipe
	p.wantEveryProcessStoppedOn(t, os.Interrupt, "order", "inventory")
}

// wantEveryProcessStoppedOn sends devrun sig and wants it to exit 0 after
// giving each of names SIGTERM.
func (p *devrunProcess) wantEveryProcessStoppedOn(t *testing.T, sig os.Signal, names ...string) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	if status := p.wait(t, 30*time.Second); status != 0 {
		t.Errorf("devrun after %v: exit status %d (%v), want 0; output:\n%s", sig, status, p.err, p.out)
	}
	for _, name := range names {
		if !p.noted(name + ".sigterm") {
			t.Errorf("%s did not get SIGTERM", name)
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

// A second Ctrl-C while the processes stop passes on to those still
// stopping: a second SIGTERM, which forces a service's stop, instead of
// waiting out --grace.
func TestASecondCtrlCForcesTheStop(t *testing.T) {
	p := startDevrun(t, []string{"order", "slowstop"}, "--services", "order,slowstop", "--grace", "1m")
	p.waitNote(t, "order.started")
	p.waitNote(t, "slowstop.started")
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	p.waitNote(t, "slowstop.sigterm")
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if status := p.wait(t, 30*time.Second); status != 0 {
		t.Errorf("devrun after two SIGINTs: exit status %d, want 0; output:\n%s", status, p.out)
	}
	if !p.noted("slowstop.forced") {
		t.Errorf("slowstop did not get a second SIGTERM; output:\n%s", p.out)
	}
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
	pid := mustPID(t, "crashonce", p.waitNote(t, "crashonce.started.2"))
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
		`(?m)^devrun: \(status 3 is how the crash_\* fault flags exit; .*crash flag set through its admin API is off again, one set in the environment stays on\)$`,
		`(?m)^crashonce \| exited: signal: killed$`,
		`(?m)^crashonce \| exited: ok$`,
		`(?m)^order +\| exited: ok$`,
	)
	if n := p.starts("crashonce"); n != 3 {
		t.Errorf("crashonce started %d times, want 3", n)
	}
}

// A restart that cannot start the binary (it is being rebuilt, say) is a
// failure like an exit: restarted within --restart-limit, the others
// keep running.
func TestARestartThatCannotStartTheBinaryIsTriedAgain(t *testing.T) {
	p := startDevrun(t, []string{"order", "vanisher"}, "--services", "order,vanisher", "--restart-delay", "10ms", "--restart-limit", "100")
	p.waitNote(t, "order.started")
	p.waitOutput(t, "devrun: vanisher failed: could not be started")
	bin := filepath.Join(filepath.Dir(p.notes), "bin", "vanisher")
	if err := os.Rename(bin+".away", bin); err != nil {
		t.Fatal(err)
	}
	p.waitNote(t, "vanisher.started.2")
	if p.noted("order.sigterm") {
		t.Errorf("order was stopped while vanisher could not be started; output:\n%s", p.out)
	}
	p.interrupt(t)
	if !p.noted("vanisher.sigterm") {
		t.Errorf("vanisher did not get SIGTERM; output:\n%s", p.out)
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
		{"0", []string{`(?m)^devrun: crasher exited with status 3 \(restarts are off: --restart-limit 0\); stopping the others \(its address is in use: is another orderflow running\? Stop it, or move this one: CRASHER_HTTP_ADDR=127\.0\.0\.1:0 picks a free port\)$`}},
		{"2", []string{
			`(?m)^devrun: crasher exited with status 3; restarting in 10ms \(restart 1\)$`,
			`(?m)^devrun: crasher exited with status 3; restarting in 20ms \(restart 2\)$`,
			`(?m)^devrun: crasher exited with status 3: 3 failures within 30s, more than --restart-limit 2 allows; giving up and stopping the others \(its address is in use: is another orderflow running\? Stop it, or move this one: CRASHER_HTTP_ADDR=127\.0\.0\.1:0 picks a free port\)$`,
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

// When the process given up on is the only one, devrun exits 1 all the
// same, although every process has then stopped.
func TestGivingUpOnTheOnlyProcessExitsOne(t *testing.T) {
	p := startDevrun(t, []string{"failnow"}, "--services", "failnow", "--restart-limit", "0")
	if status := p.wait(t, 30*time.Second); status != 1 {
		t.Fatalf("devrun after its only process failed: exit status %d, want 1; output:\n%s", status, p.out)
	}
}

// A failure that is ready together with the end of every process wins:
// run then exits 1, not 0 with the failure told only as "also". (Choosing
// at random between the two, 100 rounds all returning the failure had
// odds of 2^-100.)
func TestAFailureReadyWithTheEndOfEveryProcessWins(t *testing.T) {
	allDone := make(chan struct{})
	close(allDone)
	for round := range 100 {
		failed := make(chan error, 1)
		failed <- errors.New("crasher gave up")
		err, allStopped := firstOutcome(context.Background(), failed, allDone)
		if err == nil || allStopped {
			t.Fatalf("round %d: got error %v and allStopped %v, want the failure", round, err, allStopped)
		}
	}
	if err, allStopped := firstOutcome(context.Background(), make(chan error), allDone); err != nil || !allStopped {
		t.Errorf("every process stopped, no failure: got error %v and allStopped %v, want nil and true", err, allStopped)
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

// Ctrl-C in a terminal sends SIGINT to its foreground process group, which
// devrun is in. Its processes are not: devrun starts each in a group of its
// own, so they get devrun's SIGTERM alone and none fails of the SIGINT
// before devrun has begun to stop (as one did when they shared devrun's
// group). order's stand-in would die of a SIGINT (it handles SIGTERM
// only); badstop notes the signal that stops it and exits 3, which is not
// a failure once devrun stops. Nothing is restarted, and devrun exits 0.
func TestCtrlCInATerminalReachesDevrunAloneAndRestartsNothing(t *testing.T) {
	p := startDevrun(t, []string{"order", "badstop"}, "--services", "order,badstop")
	for _, name := range []string{"order", "badstop"} {
		p.wantOwnGroup(t, name, mustPID(t, name, p.waitNote(t, name+".started")))
	}
	p.ctrlC(t)
	out := p.out.String()
	wantOutput(t, out, `(?m)^badstop \| exited: exit status 3$`, `(?m)^order +\| exited: ok$`)
	if !p.noted("order.sigterm") {
		t.Error("order did not get SIGTERM")
	}
	p.wantStoppedBySIGTERM(t)
	if strings.Contains(out, "restarting") {
		t.Errorf("a process was restarted after Ctrl-C; output:\n%s", out)
	}
	if a, b := p.starts("order"), p.starts("badstop"); a != 1 || b != 1 {
		t.Errorf("order started %d times, badstop %d, want once each; output:\n%s", a, b, out)
	}
}

// Ctrl-C with restarts off and no restart delay: a process failing of it
// before devrun began to stop would end the run with exit 1 (restarts are
// off), and with a limit, be restarted at once. Neither: devrun exits 0
// and says nothing of a restart or a failure.
func TestCtrlCWithRestartsOffAndNoDelayExitsZero(t *testing.T) {
	names := []string{"order", "badstop", "inventory"}
	p := startDevrun(t, names, "--services", strings.Join(names, ","), "--restart-limit", "0", "--restart-delay", "0s")
	for _, name := range names {
		p.waitNote(t, name+".started")
	}
	p.ctrlC(t)
	out := p.out.String()
	wantOutput(t, out, `(?m)^badstop +\| exited: exit status 3$`, `(?m)^order +\| exited: ok$`, `(?m)^inventory +\| exited: ok$`)
	if bad := regexp.MustCompile(`(?m)^devrun: .*(restart|interrupted; also|also:)`).FindString(out); bad != "" {
		t.Errorf("devrun said %q after Ctrl-C; output:\n%s", bad, out)
	}
	p.wantStoppedBySIGTERM(t)
	for _, name := range names {
		if n := p.starts(name); n != 1 {
			t.Errorf("%s started %d times, want once", name, n)
		}
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

// A line too long for one read is written in pieces, and what follows it
// is still copied: a child whose output stops being read blocks.
func TestCopyPrefixedGoesOnPastALongLine(t *testing.T) {
	long := strings.Repeat("x", 2<<20)
	var out bytes.Buffer
	var mu sync.Mutex
	copyPrefixed(strings.NewReader(long+"\nnext\n\nlast"), &out, &mu, "order | ", nil)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	var pieces strings.Builder
	for _, l := range lines[:len(lines)-3] {
		if !strings.HasPrefix(l, "order | ") {
			t.Fatalf("line without the prefix: %.40q", l)
		}
		pieces.WriteString(strings.TrimPrefix(l, "order | "))
	}
	if pieces.String() != long {
		t.Errorf("the long line: got %d bytes in %d pieces, want its %d bytes", pieces.Len(), len(lines)-3, len(long))
	}
	if got, want := lines[len(lines)-3:], []string{"order | next", "order | ", "order | last"}; !slices.Equal(got, want) {
		t.Errorf("after it: got %q, want %q", got, want)
	}
}

// A service is started from the bin directory, never looked up in PATH:
// --bin-dir . made it "order", which exec finds in PATH.
func TestBinaryPathNeverReachesPATH(t *testing.T) {
	for _, tc := range []struct{ binDir, want string }{
		{".", "./order"},
		{"", "./order"},
		{"bin", "bin/order"},
		{"/opt/orderflow", "/opt/orderflow/order"},
	} {
		if got := binaryPath(tc.binDir, "order"); got != tc.want {
			t.Errorf("binaryPath(%q): got %q, want %q", tc.binDir, got, tc.want)
		}
	}
}
