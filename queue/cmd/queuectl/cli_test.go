package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/orderflow/orderflow/queue/backend"
)

// TestMain lets the tests run main itself in a child process (runMain), to
// check the exit status a shell sees; otherwise it runs the tests and fails
// the package if any goroutine outlives them.
func TestMain(m *testing.M) {
	if os.Getenv("QUEUECTL_TEST_RUN_MAIN") == "1" {
		main() // os.Args[1:] are the child's queuectl arguments; main exits
	}
	goleak.VerifyTestMain(m)
}

// runMain runs queuectl's main with args in a child process and returns its
// stdout, stderr and exit status.
func runMain(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "QUEUECTL_TEST_RUN_MAIN=1")
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errOut.String(), 0
	case errors.As(err, &ee):
		return out.String(), errOut.String(), ee.ExitCode()
	default:
		t.Fatalf("run queuectl %q: %v", args, err)
		return "", "", -1
	}
}

func TestExitStatus(t *testing.T) {
	url := seed(t)
	missing := "sqlite://" + filepath.Join(t.TempDir(), "none.db")
	tests := []struct {
		name       string
		args       []string
		wantStatus int
		wantOut    string // in stdout
		wantErr    string // in stderr
	}{
		{"--help", []string{"--help"}, 0, "Usage:", ""},
		{"-h", []string{"-h"}, 0, "Usage:", ""},
		{"help command", []string{"help"}, 0, "Usage:", ""},
		{"help after a global flag", []string{"--queue-url", url, "--help"}, 0, "Usage:", ""},
		{"help of a command", []string{"dlq", "list", "--help"}, 0, "-limit", ""},
		{"help of dlq", []string{"dlq", "--help"}, 0, "Usage:", ""},
		{"a command that works", []string{"--queue-url", url, "topics"}, 0, "orders", ""},
		{"no command", nil, 2, "", "no command given"},
		{"unknown flag", []string{"--frobnicate"}, 2, "", "flag provided but not defined"},
		{"unknown flag of a command", []string{"--queue-url", url, "stats", "--frobnicate"}, 2, "", "flag provided but not defined"},
		{"usage error", []string{"--queue-url", url, "dlq", "purge"}, 2, "", "--yes"},
		{"failure", []string{"--queue-url", missing, "stats"}, 1, "", "no such file"},
		{"queue URL of no known scheme", []string{"--queue-url", "ftp://x", "stats"}, 2, "", `unsupported scheme "ftp"`},
		{"queue URL that is no URL", []string{"--queue-url", "bogus", "stats"}, 2, "", "bogus"},
		{"SQLite URL with a bad parameter", []string{"--queue-url", url + "?lease=-1s", "stats"}, 2, "", "lease"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, status := runMain(t, tt.args...)
			if status != tt.wantStatus {
				t.Errorf("exit status: got %d, want %d (stderr %q)", status, tt.wantStatus, errOut)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("stdout: got %q, want it to contain %q", out, tt.wantOut)
			}
			if !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr: got %q, want it to contain %q", errOut, tt.wantErr)
			}
			if tt.wantStatus == 0 && strings.Contains(errOut, "queuectl:") {
				t.Errorf("stderr: got %q, want no error reported", errOut)
			}
		})
	}
}

func TestHelpIsNotAnError(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"help"}, {"dlq", "--help"},
		{"stats", "-h"}, {"dlq", "replay", "--help"}, {"tail", "orders", "--help"},
	} {
		out, _, err := runCLI(t, args...)
		if err != nil {
			t.Errorf("queuectl %s: got error %v, want none", strings.Join(args, " "), err)
		}
		if out == "" {
			t.Errorf("queuectl %s: printed nothing on stdout, want the usage", strings.Join(args, " "))
		}
	}
}

// The global flags work after the command too, as the README shows them
// (queuectl dlq list --json); given on both sides, the later one wins.
func TestGlobalFlagsAfterTheCommand(t *testing.T) {
	url := seed(t)
	out, _, err := runCLI(t, "dlq", "list", "--json", "--queue-url", url)
	if err != nil {
		t.Fatal(err)
	}
	var dls []backend.DeadLetterView
	if err := json.Unmarshal([]byte(out), &dls); err != nil || len(dls) != 3 {
		t.Fatalf("dlq list --json: got %q (%v), want 3 dead letters as JSON", out, err)
	}

	out, _, err = runCLI(t, "--queue-url", "sqlite:///nowhere/q.db", "stats", "--queue-url", url, "--json")
	if err != nil {
		t.Fatalf("stats after a global --queue-url: got error %v, want the later --queue-url used", err)
	}
	var stats []backend.TopicStats
	if err := json.Unmarshal([]byte(out), &stats); err != nil || len(stats) != 2 {
		t.Errorf("stats --json: got %q (%v), want 2 topics as JSON", out, err)
	}

	out, _, err = runCLI(t, "--queue-url", url, "--json", "dlq", "show", "--json=false", "1")
	if err != nil || !strings.Contains(out, "Message UUID:") {
		t.Errorf("--json dlq show --json=false 1: got %q (%v), want the table, not JSON", out, err)
	}

	out, _, err = runCLI(t, "topics", "--queue-url", url, "--json")
	if err != nil || !json.Valid([]byte(out)) || !strings.Contains(out, `"payments"`) {
		t.Errorf("topics --queue-url … --json: got %q (%v), want the topics as JSON", out, err)
	}
}

// Flags may come before or after a command's arguments (README: "before or
// after the command"): dlq show ID --json, dlq replay ID --json, tail TOPIC
// --json, and global flags between dlq and its subcommand.
func TestFlagsAfterTheArguments(t *testing.T) {
	url := seed(t)
	for _, args := range [][]string{
		{"dlq", "show", "1", "--json", "--queue-url", url},
		{"dlq", "show", "--queue-url", url, "1", "--json"},
		{"--queue-url", url, "dlq", "--json", "show", "1"},
	} {
		out, errOut, err := runCLI(t, args...)
		var dl backend.DeadLetterView
		if err != nil || json.Unmarshal([]byte(out), &dl) != nil || dl.ID != 1 {
			t.Errorf("queuectl %s: got %q, stderr %q, error %v; want dead letter 1 as JSON", strings.Join(args, " "), out, errOut, err)
		}
	}

	out, errOut, err := runCLI(t, "dlq", "replay", "2", "--json", "--queue-url", url)
	var replayed struct {
		Replayed int   `json:"replayed"`
		ID       int64 `json:"id"`
	}
	if err != nil || json.Unmarshal([]byte(out), &replayed) != nil || replayed.Replayed != 1 || replayed.ID != 2 {
		t.Errorf("dlq replay 2 --json: got %q, stderr %q, error %v; want {replayed: 1, id: 2}", out, errOut, err)
	}

	// Still one ID, and "--" still ends the flags.
	for _, args := range [][]string{
		{"--queue-url", url, "dlq", "show", "1", "--json", "3"},
		{"--queue-url", url, "dlq", "show", "--", "1", "--json"},
		{"--queue-url", url, "stats", "extra", "--json"},
		{"--queue-url", url, "tail", "orders", "--json", "payments"},
	} {
		var ue usageError
		if _, _, err := runCLI(t, args...); !errors.As(err, &ue) {
			t.Errorf("queuectl %s: got %v, want a usage error", strings.Join(args, " "), err)
		}
	}
}
