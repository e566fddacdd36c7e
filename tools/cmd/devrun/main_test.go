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
// notes in dir that it started (with the environment devrun gave it).
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
	// crasher exits 3 on its own once order has started.
	"crasher": func(name, dir string) {
		started(name, dir)
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(filepath.Join(dir, "order.started")); err == nil {
				break
			}
		}
		os.Exit(3)
	},
}

func untilSIGTERM(name, dir string) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	started(name, dir)
	select {
	case <-sig:
		note(dir, name+".sigterm", "")
	case <-time.After(time.Minute):
	}
}

func started(name, dir string) {
	fmt.Printf("hello from %s\n", name)
	note(dir, name+".started", fmt.Sprintf("GOMAXPROCS=%s\nQUEUE_URL=%s\nDATA_DIR=%s\n",
		os.Getenv("GOMAXPROCS"), os.Getenv("QUEUE_URL"), os.Getenv("DATA_DIR")))
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
		if !strings.HasPrefix(kv, "GOMAXPROCS=") && !strings.HasPrefix(kv, "QUEUE_URL=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "DEVRUN_TEST_ROLE=devrun", "DEVRUN_TEST_DIR="+notes)
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
			_ = cmd.Process.Kill()
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

// Ctrl-C (SIGINT to devrun) stops every process with SIGTERM, and devrun
// exits 0 once they have: what `go tool task run` relies on.
func TestCtrlCStopsEveryProcessAndExitsZero(t *testing.T) {
	p := startDevrun(t, []string{"order", "inventory"}, "--services", "order,inventory,console")
	env := p.waitNote(t, "order.started")
	p.waitNote(t, "inventory.started")

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

// A process that exits on its own stops the others, and devrun fails.
func TestAProcessThatExitsStopsTheOthers(t *testing.T) {
	p := startDevrun(t, []string{"order", "crasher"}, "--services", "order,crasher")
	p.waitNote(t, "order.started")
	if status := p.wait(t, 30*time.Second); status != 1 {
		t.Errorf("devrun after crasher exited: exit status %d, want 1; output:\n%s", status, p.out)
	}
	if !p.noted("order.sigterm") {
		t.Error("order did not get SIGTERM")
	}
	out := p.out.String()
	for _, want := range []string{"crasher | exited: exit status 3", "devrun: crasher stopped unexpectedly; stopping the others", "order   | exited: ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("devrun's output:\n%s\nwant it to contain %q", out, want)
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
	if err := run(context.Background(), []string{"--services", " , "}, &bytes.Buffer{}); err == nil {
		t.Error("--services naming nothing: got no error, want one")
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
