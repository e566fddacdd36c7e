package browsertest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// stop must catch a process that exits uncleanly on SIGTERM, and must not
// hang on the second of two processes that ignore it.
func TestStopReportsEveryUncleanExit(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("no sh to run the test processes: %v", err)
	}
	s := &system{logDir: t.TempDir()}
	// Each script says "ready" once its SIGTERM handling is in place.
	scripts := []struct{ name, script, want string }{
		// sleep in the background and wait: the shell runs its trap at
		// once instead of after the sleep.
		{"clean", `trap 'exit 0' TERM; echo ready; sleep 60 & wait`, ""},
		{"deaf-1", `trap '' TERM; echo ready; exec sleep 60`, "deaf-1 did not stop within 3s of SIGTERM; killed"},
		{"deaf-2", `trap '' TERM; echo ready; exec sleep 60`, "deaf-2 did not stop within 3s of SIGTERM; killed"},
		{"unhandled", `echo ready; exec sleep 60`, "unhandled did not exit cleanly: signal: terminated"},
	}
	for _, sc := range scripts {
		s.launch(t, sc.name, exec.Command(sh, "-c", sc.script))
	}
	for _, sc := range scripts {
		waitForFile(t, filepath.Join(s.logDir, sc.name+".log"), "ready")
	}

	stopped := make(chan error, 1)
	// 3 s: room for a loaded CI machine to deliver SIGTERM and reap the
	// clean ones; the deadline is shared, so the test waits it once.
	go func() { stopped <- s.stop(3 * time.Second) }()
	select {
	case err = <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("stop did not return within 30s: it hangs on a process that ignores SIGTERM")
	}
	if err == nil {
		t.Fatal("stop: got no error, want the three unclean exits")
	}
	// One line per process that failed, starting with its name.
	got := map[string]string{}
	for line := range strings.SplitSeq(err.Error(), "\n") {
		name, _, _ := strings.Cut(line, " ")
		got[name] = line
	}
	for _, sc := range scripts {
		if got[sc.name] != sc.want {
			t.Errorf("stop about %s: got %q, want %q", sc.name, got[sc.name], sc.want)
		}
	}
}

func waitForFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		if strings.Contains(string(data), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: got %q after 10s, want %q", path, data, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
