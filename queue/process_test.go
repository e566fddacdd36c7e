package queue_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	_ "github.com/mattn/go-sqlite3"

	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/postgres/pgtest"
	"github.com/orderflow/orderflow/queue/retry"
	"github.com/orderflow/orderflow/queue/sqlite"
)

// These tests run the queue in real OS processes: the test binary starts
// itself again with QUEUE_HELPER_ROLE set, and TestHelperProcess plays the
// role instead of testing.

const helperEnv = "QUEUE_HELPER_ROLE"

func TestHelperProcess(t *testing.T) {
	role := os.Getenv(helperEnv)
	if role == "" {
		return // not a helper: nothing to test here
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var err error
	switch role {
	case "consumer":
		err = helperConsumer(ctx)
	case "worker":
		err = helperWorker(ctx)
	case "crasher":
		err = helperCrasher(ctx)
	case "open":
		var q *queue.Queue
		if q, err = queue.Open(ctx, queue.Config{URL: os.Getenv("QUEUE_HELPER_URL")}); err == nil {
			err = q.Close()
		}
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// appendLine writes one line and syncs it, so it survives a SIGKILL.
func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		return err
	}
	return f.Sync()
}

// helperConsumer handles topic "jobs" for group "g", logging "start" and
// "done" per message; with HANG=1 it never finishes a handler.
func helperConsumer(ctx context.Context) error {
	q, err := queue.Open(ctx, queue.Config{URL: os.Getenv("QUEUE_URL"), Logger: watermill.NewStdLoggerWithOut(os.Stderr, false, false)})
	if err != nil {
		return err
	}
	defer q.Close()
	r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "g"})
	if err != nil {
		return err
	}
	out, hang := os.Getenv("OUT"), os.Getenv("HANG") == "1"
	r.Handle("jobs", "jobs", func(msg *message.Message) error {
		if err := appendLine(out, "start "+msg.UUID+" "+msg.Metadata.Get(backend.MetadataAttempt)); err != nil {
			return err
		}
		if hang {
			<-msg.Context().Done() // until killed
			return msg.Context().Err()
		}
		return appendLine(out, "done "+msg.UUID)
	})
	return r.Run(ctx)
}

// helperCrasher handles topics "jobs" and "other" for group "g", four
// messages at a time, logging "start UUID ABANDONED" (the message's
// backend.MetadataAbandoned, "-" when not set) and "done UUID" per
// message. A message whose payload is "poison" takes the process down
// instead, as a Go fatal error or an out-of-memory kill would: no error,
// no panic, exit status 3.
func helperCrasher(ctx context.Context) error {
	q, err := queue.Open(ctx, queue.Config{URL: os.Getenv("QUEUE_URL"), Logger: watermill.NewStdLoggerWithOut(os.Stderr, false, false)})
	if err != nil {
		return err
	}
	defer q.Close()
	r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "g", Concurrency: 4})
	if err != nil {
		return err
	}
	out := os.Getenv("OUT")
	handle := func(msg *message.Message) error {
		abandoned, ok := msg.Metadata[backend.MetadataAbandoned]
		if !ok {
			abandoned = "-"
		}
		if err := appendLine(out, "start "+msg.UUID+" "+abandoned); err != nil {
			return err
		}
		if string(msg.Payload) == "poison" {
			os.Exit(3)
		}
		time.Sleep(20 * time.Millisecond) // long enough to be running when the poison comes
		return appendLine(out, "done "+msg.UUID)
	}
	r.Handle("jobs", "jobs", handle)
	r.Handle("other", "other", handle)
	return r.Run(ctx)
}

// helperWorker publishes N messages, one per Publish, from 4 goroutines,
// and handles topic "load" in group "workers", logging each handled UUID.
func helperWorker(ctx context.Context) error {
	logs := watermill.NewStdLoggerWithOut(os.Stderr, false, false)
	q, err := queue.Open(ctx, queue.Config{URL: os.Getenv("QUEUE_URL"), Logger: logs})
	if err != nil {
		return err
	}
	defer q.Close()
	r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: "workers", Concurrency: 8})
	if err != nil {
		return err
	}
	f, err := os.Create(os.Getenv("OUT"))
	if err != nil {
		return err
	}
	defer f.Close()
	var mu sync.Mutex
	w := bufio.NewWriter(f)
	r.Handle("load", "load", func(msg *message.Message) error {
		mu.Lock()
		defer mu.Unlock()
		_, err := w.WriteString(msg.UUID + "\n")
		return err
	})
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(ctx) }()
	<-r.Running()

	n, _ := strconv.Atoi(os.Getenv("N"))
	name := os.Getenv("NAME")
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 4 {
				if err := q.Publisher().Publish("load", message.NewMessage(fmt.Sprintf("%s-%d", name, i), []byte("x"))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return fmt.Errorf("publish: %w", err)
	}
	fmt.Fprintln(os.Stderr, "published", n)
	err = <-runErr // until SIGTERM
	mu.Lock()
	defer mu.Unlock()
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return err
}

type helper struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	mu     *sync.Mutex
}

func startHelper(t *testing.T, role string, env ...string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), append([]string{helperEnv + "=" + role}, env...)...)
	h := &helper{cmd: cmd, stderr: &bytes.Buffer{}, mu: &sync.Mutex{}}
	cmd.Stderr = lockedWriter{h.mu, h.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", role, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", role, h.output())
		}
	})
	return h
}

func (h *helper) output() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stderr.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func readLines(path string) []string {
	b, _ := os.ReadFile(path)
	return strings.Fields(strings.ReplaceAll(string(b), "\n", "\t"))
}

func fileLines(path string) []string {
	b, _ := os.ReadFile(path)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func TestKilledConsumerMidHandlerMessageIsRedeliveredToTheNextConsumer(t *testing.T) {
	dir := t.TempDir()
	url := "sqlite://" + filepath.Join(dir, "q.db") + "?lease=1s"
	first, second := filepath.Join(dir, "first.log"), filepath.Join(dir, "second.log")

	hung := startHelper(t, "consumer", "QUEUE_URL="+url, "OUT="+first, "HANG=1")
	q := openSQLite(t, filepath.Join(dir, "q.db"))
	// Register the group before publishing so the message waits for it.
	registerGroup(t, q, "g", "jobs")
	if err := q.Publisher().Publish("jobs", message.NewMessage("job-1", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first consumer to start the handler", func() bool { return len(fileLines(first)) == 1 })
	if err := hung.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = hung.cmd.Wait()

	startHelper(t, "consumer", "QUEUE_URL="+url, "OUT="+second)
	waitFor(t, "the second consumer to finish the message", func() bool { return len(fileLines(second)) == 2 })
	if got, want := strings.Join(fileLines(first), "|"), "start job-1 1"; got != want {
		t.Errorf("first consumer: got %q, want %q", got, want)
	}
	if got, want := strings.Join(fileLines(second), "|"), "start job-1 2|done job-1"; got != want {
		t.Errorf("second consumer: got %q, want %q (redelivered after the lease expired, as attempt 2)", got, want)
	}
	waitFor(t, "the delivery to be acked", func() bool { return groupDepth(t, q, "jobs", "g") == 0 })
}

func TestFourProcessesShareOneFileWithoutLockErrorsOrLoss(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "q.db")
	q := openSQLite(t, path)
	registerGroup(t, q, "workers", "load")

	perProcess := 3000
	if testing.Short() {
		perProcess = 500
	}
	var workers []*helper
	var outs []string
	for i := range 4 {
		out := filepath.Join(dir, fmt.Sprintf("worker-%d.log", i))
		outs = append(outs, out)
		workers = append(workers, startHelper(t, "worker", "QUEUE_URL=sqlite://"+path, "OUT="+out, "N="+strconv.Itoa(perProcess), "NAME=w"+strconv.Itoa(i)))
	}
	total := 4 * perProcess
	waitForLong(t, "every message to be handled", 3*time.Minute, func() bool {
		return groupDepth(t, q, "load", "workers") == 0 && allPublished(workers)
	})
	for _, w := range workers {
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
	}
	handled := map[string]int{}
	for i, w := range workers {
		if err := w.cmd.Wait(); err != nil {
			t.Errorf("worker %d: %v\n%s", i, err, w.output())
		}
		if strings.Contains(w.output(), "database is locked") {
			t.Errorf("worker %d logged 'database is locked':\n%s", i, w.output())
		}
		for _, id := range readLines(outs[i]) {
			handled[id]++
		}
	}
	if len(handled) != total {
		t.Errorf("distinct messages handled: got %d, want %d", len(handled), total)
	}
	dups := 0
	for _, n := range handled {
		if n > 1 {
			dups++
		}
	}
	if dups > 0 {
		t.Errorf("messages handled more than once without any crash: got %d, want 0", dups)
	}
}

func allPublished(ws []*helper) bool {
	for _, w := range ws {
		if !strings.Contains(w.output(), "published") {
			return false
		}
	}
	return true
}

func waitForLong(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Processes started together open one queue file, new at first: every
// process must start. (A CI run saw one service of the console's browser
// test fail to connect with "database is locked" while the others started.
// The cause, found later: every connection, readers too, asked for
// auto_vacuum, a write transaction at connect; now a new file gets it once,
// from sqlitefile.Prepare (sqlite.TestConnectingToAnExistingFileWritesNothing),
// and Open retries a connect or a preparation that fails busy. This test has not reproduced the
// failure in 80 rounds; it guards concurrent starts in general.)
func TestProcessesOpeningANewFileTogetherAllStart(t *testing.T) {
	for round := range 10 {
		url := "sqlite://" + filepath.Join(t.TempDir(), "queue.db")
		cmds := make([]*exec.Cmd, 6)
		outs := make([]*bytes.Buffer, len(cmds))
		for i := range cmds {
			cmds[i] = exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
			cmds[i].Env = append(os.Environ(), helperEnv+"=open", "QUEUE_HELPER_URL="+url)
			outs[i] = &bytes.Buffer{}
			cmds[i].Stderr = outs[i]
			if err := cmds[i].Start(); err != nil {
				t.Fatal(err)
			}
		}
		for i, cmd := range cmds {
			if err := cmd.Wait(); err != nil {
				t.Errorf("round %d, process %d: %v: %s", round, i, err, outs[i])
			}
		}
		// Whoever committed first, the file must be incremental, with
		// the page size chosen for it.
		db, err := sql.Open("sqlite3", "file:"+strings.TrimPrefix(url, "sqlite://")+"?_query_only=1")
		if err != nil {
			t.Fatal(err)
		}
		var autoVacuum, pageSize int
		err = db.QueryRow("PRAGMA auto_vacuum").Scan(&autoVacuum)
		if err == nil {
			err = db.QueryRow("PRAGMA page_size").Scan(&pageSize)
		}
		_ = db.Close()
		if err != nil {
			t.Fatal(err)
		}
		if autoVacuum != 2 {
			t.Errorf("round %d: auto_vacuum of the new file: got %d, want 2 (incremental)", round, autoVacuum)
		}
		if pageSize != sqlite.PageSize {
			t.Errorf("round %d: page_size of the new file: got %d, want %d", round, pageSize, sqlite.PageSize)
		}
	}
}

// A message that takes its consumer's process down every time (here it
// exits; a Go fatal error or an out-of-memory kill would do the same) is
// dead-lettered after it has done so while running alone in the process
// twice (retry.Config.MaxAbandoned), instead of crashing it for ever; the
// messages that ran beside it when it first crashed run alone next, go
// through, and are not blamed. The consumer is a real process, restarted
// after each crash as devrun would.
func TestAMessageThatCrashesItsProcessIsDeadLetteredAfterThreeCrashes(t *testing.T) {
	for name, url := range crashLoopQueues() {
		t.Run(name, func(t *testing.T) { testCrashLoop(t, url(t), 1) })
	}
}

// crashLoopQueues are the queues the crash-loop tests run on, by name.
func crashLoopQueues() map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		// A short lease: the crashed process's messages come back soon.
		"sqlite":   func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "q.db") + "?lease=1s" },
		"postgres": func(t *testing.T) string { return pgtest.SchemaURL(t, "crashloop") },
	}
}

// Two such messages one after the other are each dead-lettered after at
// most three crashes: the first one's dead-lettering (an ack) is not
// undone when the second takes the process down before the first one's
// batch is committed (on PostgreSQL, watermill-sql stores a batch's acks
// at its end), and the crashes do not pile up.
func TestAdjacentCrashingMessagesAreEachDeadLetteredWithinThreeCrashes(t *testing.T) {
	for name, url := range crashLoopQueues() {
		t.Run(name, func(t *testing.T) { testCrashLoop(t, url(t), 2) })
	}
}

// testCrashLoop publishes poisons crashing messages, one after the other,
// among innocent ones on two topics, and runs a consumer process (the
// helper role "crasher"), restarted after each crash, until the poisons
// are dead-lettered and every innocent message is handled.
func testCrashLoop(t *testing.T, url string, poisons int) {
	q := openURL(t, url)
	registerGroup(t, q, "g", "jobs", "other")
	var innocents []string
	publish := func(topic, uuid, payload string) {
		t.Helper()
		if err := q.Publisher().Publish(topic, message.NewMessage(uuid, []byte(payload))); err != nil {
			t.Fatal(err)
		}
		if payload != "poison" {
			innocents = append(innocents, uuid)
		}
	}
	for i := range 3 {
		publish("jobs", fmt.Sprintf("job-%d", i), "x")
		publish("other", fmt.Sprintf("other-%d", i), "x")
	}
	for i := 1; i <= poisons; i++ {
		publish("jobs", fmt.Sprintf("poison-%d", i), "poison")
	}
	for i := 3; i < 8; i++ {
		publish("jobs", fmt.Sprintf("job-%d", i), "x")
		publish("other", fmt.Sprintf("other-%d", i), "x")
	}

	out := filepath.Join(t.TempDir(), "handled.log")
	done := func() bool {
		lines := strings.Join(fileLines(out), "\n") + "\n"
		for _, uuid := range innocents {
			if !strings.Contains(lines, "done "+uuid+"\n") {
				return false
			}
		}
		dls, err := q.Backend().DeadLetters().List(context.Background(), backend.DeadLetterFilter{})
		return err == nil && len(dls) >= poisons
	}
	crashes := 0
	for !t.Failed() {
		h := startHelper(t, "crasher", "QUEUE_URL="+url, "OUT="+out)
		exited := make(chan error, 1)
		go func() { exited <- h.cmd.Wait() }()
		if crashed := superviseUntil(t, exited, done); !crashed {
			if err := h.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := <-exited; err != nil {
				t.Errorf("consumer stopped with %v, want a clean exit", err)
			}
			break
		}
		crashes++
		if crashes > 3*poisons {
			t.Fatalf("the consumer crashed %d times, want each of the %d poisons dead-lettered after at most three crashes; handled:\n%s",
				crashes, poisons, strings.Join(fileLines(out), "\n"))
		}
	}
	if poisons == 1 && crashes != 3 {
		t.Errorf("crashes: got %d, want 3 (once beside other messages, then twice alone)", crashes)
	}

	if poisons == 1 {
		var poisonStarts []string
		for _, l := range fileLines(out) {
			if f := strings.Fields(l); len(f) == 3 && f[0] == "start" && f[1] == "poison-1" {
				poisonStarts = append(poisonStarts, f[2])
			}
		}
		if got, want := strings.Join(poisonStarts, " "), "- 0 1"; got != want {
			t.Errorf("the poison's runs, by its abandoned runs before each: got %q, want %q (once beside others, then alone twice)", got, want)
		}
	}
	dls, err := q.Backend().DeadLetters().List(context.Background(), backend.DeadLetterFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var dead []string
	for _, dl := range dls {
		dead = append(dead, dl.MessageUUID)
	}
	slices.Sort(dead)
	var wantDead []string
	for i := 1; i <= poisons; i++ {
		wantDead = append(wantDead, fmt.Sprintf("poison-%d", i))
	}
	if !slices.Equal(dead, wantDead) {
		t.Fatalf("dead letters: got %v, want %v", dead, wantDead)
	}
	for _, dl := range dls {
		if got, want := dl.Metadata[retry.MetadataDeadLetterReason], retry.ReasonAbandoned; got != want {
			t.Errorf("dead letter %s reason: got %q, want %q", dl.MessageUUID, got, want)
		}
		if dl.Topic != "jobs" || dl.ConsumerGroup != "g" {
			t.Errorf("dead letter %s: got topic %q, group %q; want jobs, g", dl.MessageUUID, dl.Topic, dl.ConsumerGroup)
		}
		if poisons > 1 {
			continue
		}
		if dl.Attempts != 4 {
			t.Errorf("dead letter: got attempts %d, want 4", dl.Attempts)
		}
		if !strings.Contains(dl.LastError, "abandoned 2 times") {
			t.Errorf("dead letter error: got %q, want it to say the handling was abandoned 2 times", dl.LastError)
		}
	}
	waitFor(t, "every delivery to be acked", func() bool {
		return groupDepth(t, q, "jobs", "g") == 0 && groupDepth(t, q, "other", "g") == 0
	})
}

// superviseUntil waits until the consumer exits (and reports true, after
// checking that it crashed as the poison makes it: exit status 3) or until
// done holds (and reports false).
func superviseUntil(t *testing.T, exited <-chan error, done func() bool) bool {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(2 * time.Minute) // a watchdog: either comes within seconds
	for {
		select {
		case err := <-exited:
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 3 {
				t.Fatalf("consumer exited with %v, want exit status 3 (the poison's crash)", err)
			}
			return true
		case <-tick.C:
			if done() {
				return false
			}
		case <-deadline:
			t.Fatal("neither a crash nor every message settled within 2 minutes")
		}
	}
}
