package main

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// platformStandIns are the stand-ins (see standIns) only Linux runs.
var platformStandIns = map[string]func(name, dir string){
	// loner moves itself into devrun's process group, out of the one
	// devrun made for it, then runs until SIGTERM.
	"loner": func(name, dir string) {
		pgid, err := syscall.Getpgid(os.Getppid())
		if err == nil {
			err = syscall.Setpgid(0, pgid)
		}
		if err != nil {
			note(dir, name+".setpgid", err.Error())
		}
		untilSIGTERM(name, dir)
	},
}

// A process that left the group devrun made for it still gets devrun's
// SIGTERM: with no group of that id any more, devrun signals the process
// itself.
func TestAProcessThatLeftItsGroupStillGetsSIGTERM(t *testing.T) {
	p := startDevrun(t, []string{"order", "loner"}, "--services", "order,loner", "--grace", "20s")
	p.waitNote(t, "order.started")
	p.waitNote(t, "loner.started")
	if p.noted("loner.setpgid") {
		t.Fatalf("loner could not leave its group: %s", p.waitNote(t, "loner.setpgid"))
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if status := p.wait(t, 30*time.Second); status != 0 {
		t.Errorf("devrun after SIGINT: exit status %d, want 0; output:\n%s", status, p.out)
	}
	if !p.noted("loner.sigterm") {
		t.Errorf("loner, out of its group, did not get SIGTERM; devrun's output:\n%s", p.out)
	}
	// devrun saw loner exit: the SIGTERM was devrun's, not the kernel's
	// parent-death signal after devrun had gone.
	if out := p.out.String(); !regexp.MustCompile(`(?m)^loner +\| exited: ok$`).MatchString(out) {
		t.Errorf("devrun's output:\n%s\nwant loner's exit before devrun's own", out)
	}
}

// A devrun killed with SIGKILL cannot stop its processes; the kernel sends
// each SIGTERM then (Pdeathsig), so that none outlives devrun: none is
// still running a generous while later, and those that handle SIGTERM
// noted it (a clean stop, not a kill).
func TestNoProcessOutlivesAKilledDevrun(t *testing.T) {
	names := []string{"order", "inventory", "badstop"}
	p := startDevrun(t, names, "--services", strings.Join(names, ","))
	type proc struct {
		name  string
		pid   int
		start string // its start time, which a process taking over the pid would not have
	}
	var procs []proc
	for _, name := range names {
		pid := mustPID(t, name, p.waitNote(t, name+".started"))
		start, ok := procStart(pid)
		if !ok {
			t.Fatalf("%s (pid %d) is not running", name, pid)
		}
		procs = append(procs, proc{name, pid, start})
	}

	if err := p.cmd.Process.Kill(); err != nil { // devrun alone, as kill -9 PID does
		t.Fatal(err)
	}
	p.wait(t, 30*time.Second) // killed: the status is -1

	// Generous, to catch a survivor only.
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range procs {
		for {
			start, ok := procStart(c.pid)
			if !ok || start != c.start {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s (pid %d) still runs 30 s after devrun was killed", c.name, c.pid)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, name := range []string{"order", "inventory"} {
		if !p.noted(name + ".sigterm") {
			t.Errorf("%s did not get SIGTERM when devrun was killed", name)
		}
	}
	p.wantStoppedBySIGTERM(t)
}

// A devrun whose parent ends (Task forced out by repeated signals, a shell
// that was killed) stops its processes as on Ctrl-C, rather than leave
// them running with no one to stop them, and exits.
func TestDevrunStopsWhenItsParentEnds(t *testing.T) {
	p := startDevrunEnv(t, []string{"DEVRUN_TEST_PARENT=1"}, []string{"order"}, "--services", "order")
	order := mustPID(t, "order", p.waitNote(t, "order.started"))
	devrun, err := strconv.Atoi(strings.TrimSpace(p.waitNote(t, "devrun.pid")))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Kill(); err != nil { // the parent alone
		t.Fatal(err)
	}
	p.wait(t, 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range []struct {
		name string
		pid  int
	}{{"order", order}, {"devrun", devrun}} {
		for {
			if _, ok := procStart(c.pid); !ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s (pid %d) still runs 30 s after devrun's parent ended", c.name, c.pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if !p.noted("order.sigterm") {
		t.Error("order was not stopped with SIGTERM when devrun's parent ended")
	}
}

// procStart returns the start time of the process pid from /proc, and
// false if there is no such process or it has ended (a zombie, which a
// container's init may never reap, has ended).
func procStart(pid int) (string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	// pid (comm) state ppid … starttime is the 22nd field; comm may hold
	// spaces and parentheses, so count from the last ')'.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 20 || fields[0] == "Z" || fields[0] == "X" {
		return "", false
	}
	return fields[19], true
}
