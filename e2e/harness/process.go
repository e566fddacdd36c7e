package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is one service binary run as an OS process. It can be started
// again after it stopped (Start), killed (Kill: SIGKILL), stopped
// gracefully (Term: SIGTERM) or restarted (Restart). Its addresses are read
// from its own start-up log line, so it listens on ports picked by the
// kernel (127.0.0.1:0) and gets new ones on every start.
//
// Its methods are safe for concurrent use.
type Process struct {
	name    string
	bin     string
	args    []string
	env     []string
	logPath string
	tail    *ring

	// StartTimeout bounds Start: the start-up log line, then /readyz.
	StartTimeout time.Duration

	mu         sync.Mutex
	cmd        *exec.Cmd
	done       chan struct{} // closed when the current run has been waited for
	state      *os.ProcessState
	adminAddr  string
	httpAddr   string
	starts     int
	stopping   bool // the harness asked the current run to stop
	unexpected []string
	lastCrash  bool // the last run's exit is the last entry of unexpected
	logFile    *os.File
}

func newProcess(name, bin string, args, env []string, logPath string) *Process {
	return &Process{
		name: name, bin: bin, args: args, env: env, logPath: logPath,
		tail: newRing(200), StartTimeout: 30 * time.Second,
	}
}

// Name is the service's name.
func (p *Process) Name() string { return p.name }

// AdminURL is the base URL of the process's admin API ("http://host:port"),
// as of its last start.
func (p *Process) AdminURL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "http://" + p.adminAddr
}

// HTTPURL is the base URL of the order API (the order service only).
func (p *Process) HTTPURL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "http://" + p.httpAddr
}

// Running reports whether the process is running (started and not yet
// waited for).
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runningLocked()
}

func (p *Process) runningLocked() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Starts counts how often the process was started.
func (p *Process) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// SetEnv sets key to value in the environment of the process's next
// starts (a fault flag fixed, say).
func (p *Process) SetEnv(key, value string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	env := slices.DeleteFunc(slices.Clone(p.env), func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
	p.env = append(env, key+"="+value)
}

// Start runs the binary and returns once its admin API answers /readyz
// with 200 (its handlers run and its databases answer). It fails if the
// process is already running.
func (p *Process) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.runningLocked() {
		p.mu.Unlock()
		return fmt.Errorf("%s: already running", p.name)
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.mu.Unlock()
		return fmt.Errorf("%s: log file: %w", p.name, err)
	}
	p.starts++
	header := fmt.Sprintf("=== harness: start #%d of %s at %s", p.starts, p.name, time.Now().Format(time.RFC3339Nano))
	fmt.Fprintln(f, header)
	p.tail.add(header)

	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.SysProcAttr = procAttr()
	pr, pw, err := os.Pipe()
	if err != nil {
		p.mu.Unlock()
		_ = f.Close()
		return fmt.Errorf("%s: pipe: %w", p.name, err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		_ = f.Close()
		_ = pr.Close()
		_ = pw.Close()
		return fmt.Errorf("%s: start: %w", p.name, err)
	}
	_ = pw.Close() // the child holds its own copy
	done := make(chan struct{})
	addrs := make(chan [2]string, 1)
	p.cmd, p.done, p.state, p.stopping = cmd, done, nil, false
	p.adminAddr, p.httpAddr = "", ""
	p.logFile = f
	p.mu.Unlock()

	go p.supervise(cmd, pr, f, done, addrs)

	timeout := p.StartTimeout
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case a := <-addrs:
		p.mu.Lock()
		if p.done == done {
			p.adminAddr, p.httpAddr = a[0], a[1]
		}
		p.mu.Unlock()
	case <-done:
		return fmt.Errorf("%s: exited during start-up (%s)", p.name, p.ExitStatus())
	case <-timer.C:
		_ = p.Kill()
		return fmt.Errorf("%s: no start-up log line within %s", p.name, timeout)
	case <-ctx.Done():
		_ = p.Kill()
		return ctx.Err()
	}
	return p.waitReady(ctx, done, timer.C)
}

func (p *Process) waitReady(ctx context.Context, done chan struct{}, deadline <-chan time.Time) error {
	url := p.AdminURL() + "/readyz"
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := quickClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		select {
		case <-done:
			return fmt.Errorf("%s: exited before it was ready (%s)", p.name, p.ExitStatus())
		case <-deadline:
			_ = p.Kill()
			return fmt.Errorf("%s: not ready in time: %s", p.name, last)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// supervise copies the process's output to its log file and tail, reports
// its addresses from its start-up lines, and waits for it.
func (p *Process) supervise(cmd *exec.Cmd, out io.ReadCloser, f *os.File, done chan struct{}, addrs chan<- [2]string) {
	var admin, httpAddr string
	sent := false
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		_, _ = f.WriteString(line + "\n")
		p.tail.add(line)
		if sent || !strings.Contains(line, "started") && !strings.Contains(line, "listening") {
			continue
		}
		var rec struct {
			Msg   string `json:"msg"`
			Admin string `json:"admin"`
			HTTP  string `json:"http"`
			Addr  string `json:"addr"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		switch rec.Msg {
		case "service started":
			admin = rec.Admin
		case "order service started":
			admin, httpAddr = rec.Admin, rec.HTTP
		case "admin API listening":
			if admin == "" {
				admin = rec.Addr
			}
		default:
			continue
		}
		admin = strings.TrimPrefix(admin, "http://")
		httpAddr = strings.TrimPrefix(httpAddr, "http://")
		if admin != "" && (p.name != OrderService || httpAddr != "") {
			addrs <- [2]string{admin, httpAddr}
			sent = true
		}
	}
	_, _ = io.Copy(io.Discard, out)
	_ = out.Close()
	err := cmd.Wait()

	p.mu.Lock()
	p.state = cmd.ProcessState
	status := exitText(cmd.ProcessState, err)
	footer := fmt.Sprintf("=== harness: %s exited at %s: %s", p.name, time.Now().Format(time.RFC3339Nano), status)
	_, _ = f.WriteString(footer + "\n")
	_ = f.Close()
	p.tail.add(footer)
	p.lastCrash = !p.stopping
	if p.lastCrash {
		p.unexpected = append(p.unexpected, fmt.Sprintf("start #%d: %s", p.starts, status))
	}
	p.mu.Unlock()
	close(done)
}

func exitText(st *os.ProcessState, err error) string {
	if st == nil {
		if err != nil {
			return err.Error()
		}
		return "unknown"
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("exit status %d", st.ExitCode())
}

// ExitStatus describes how the last run ended ("exit status 3", "killed by
// killed"), or "running".
func (p *Process) ExitStatus() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == nil {
		return "running"
	}
	return exitText(p.state, nil)
}

// ExitCode is the exit code of the last run: -1 if it was killed by a
// signal or is still running.
func (p *Process) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == nil {
		return -1
	}
	return p.state.ExitCode()
}

// signal sends sig to the running process and waits up to wait for it to
// exit. The exit is expected: it is not reported as a crash.
func (p *Process) signal(sig syscall.Signal, wait time.Duration) error {
	p.mu.Lock()
	if !p.runningLocked() {
		p.mu.Unlock()
		return nil
	}
	p.stopping = true
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%s: %s: %w", p.name, sig, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(wait):
		return fmt.Errorf("%s: still running %s after %s", p.name, wait, sig)
	}
}

// Signal sends sig to the running process without waiting for it to exit
// (WaitExit does); its exit is then expected, not reported as a crash.
// Signalling a process that is not running does nothing.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	if !p.runningLocked() {
		p.mu.Unlock()
		return nil
	}
	p.stopping = true
	cmd := p.cmd
	p.mu.Unlock()
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%s: %s: %w", p.name, sig, err)
	}
	return nil
}

// LastRun returns the lines the process wrote in its last run (from the
// harness's start header on, at most the last 200 lines of every run).
func (p *Process) LastRun() []string {
	lines := p.tail.lines()
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "=== harness: start #") {
			return lines[i+1:]
		}
	}
	return lines
}

// Kill sends SIGKILL and waits until the process is gone. Killing a
// process that is not running does nothing.
func (p *Process) Kill() error { return p.signal(syscall.SIGKILL, 30*time.Second) }

// Term sends SIGTERM and waits up to grace for a clean stop, then kills
// the process. It reports whether the stop was clean (exit status 0).
func (p *Process) Term(grace time.Duration) error {
	if err := p.signal(syscall.SIGTERM, grace); err != nil {
		_ = p.Kill()
		return err
	}
	if code := p.ExitCode(); code != 0 {
		return fmt.Errorf("%s: SIGTERM: %s, want exit status 0", p.name, p.ExitStatus())
	}
	return nil
}

// WaitExit waits up to timeout for the process to exit on its own (a crash
// point, say) and returns its exit code. The exit is then expected: it is
// not reported as a crash at the end of the test.
func (p *Process) WaitExit(timeout time.Duration) (int, error) {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return -1, fmt.Errorf("%s: never started", p.name)
	}
	select {
	case <-done:
	case <-time.After(timeout):
		return -1, fmt.Errorf("%s: still running after %s", p.name, timeout)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.unexpected); p.lastCrash && n > 0 {
		p.unexpected = p.unexpected[:n-1]
		p.lastCrash = false
	}
	return p.state.ExitCode(), nil
}

// UnexpectedExits lists the runs that ended without the harness asking
// (crashes), oldest first, and forgets them.
func (p *Process) UnexpectedExits() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.unexpected
	p.unexpected, p.lastCrash = nil, false
	return u
}

// Tail returns the last lines the process wrote (at most 200, across
// restarts).
func (p *Process) Tail() []string { return p.tail.lines() }

// LogPath is the file holding everything the process wrote, every run.
func (p *Process) LogPath() string { return p.logPath }

// ring keeps the last n lines.
type ring struct {
	mu   sync.Mutex
	buf  []string
	next int
	full bool
}

func newRing(n int) *ring { return &ring{buf: make([]string, n)} }

func (r *ring) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = s
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

func (r *ring) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]string(nil), r.buf[:r.next]...)
	}
	return append(append([]string(nil), r.buf[r.next:]...), r.buf[:r.next]...)
}

// quickClient is for health probes and admin calls.
var quickClient = &http.Client{Timeout: 5 * time.Second}
