// Command devrun starts orderflow's processes side by side for local use
// (`go tool task run`): each service is its own OS process on the embedded
// SQLite queue under one data directory, its output prefixed with its name.
// SIGINT or SIGTERM stops every process with SIGTERM and waits for them; a
// process that does not stop within the grace period is killed.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "devrun:", err)
		os.Exit(1)
	}
}

type config struct {
	dataDir  string
	binDir   string
	services []string
	grace    time.Duration
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("devrun", flag.ContinueOnError)
	cfg := config{}
	var services string
	fs.StringVar(&cfg.dataDir, "data-dir", "data", "directory for the queue file and each service's database")
	fs.StringVar(&cfg.binDir, "bin-dir", "bin", "directory holding the built binaries")
	fs.StringVar(&services, "services", "order,inventory,payment,shipping,console", "comma-separated processes to start; missing binaries are skipped with a note")
	fs.DurationVar(&cfg.grace, "grace", 15*time.Second, "how long to wait for a clean stop before SIGKILL")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: devrun [flags]\n\nStarts the orderflow processes on embedded SQLite and stops them together on Ctrl-C.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	for _, s := range strings.Split(services, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.services = append(cfg.services, s)
		}
	}
	if len(cfg.services) == 0 {
		return config{}, errors.New("--services names no process")
	}
	return cfg, nil
}

func run(ctx context.Context, args []string, out io.Writer) error {
	cfg, err := parseFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	dataDir, err := filepath.Abs(cfg.dataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}

	var outMu sync.Mutex
	width := 0
	for _, s := range cfg.services {
		width = max(width, len(s))
	}
	procs := make([]*process, 0, len(cfg.services))
	exited := make(chan string, len(cfg.services))
	var wg sync.WaitGroup
	for _, name := range cfg.services {
		bin := filepath.Join(cfg.binDir, name)
		if _, err := os.Stat(bin); err != nil {
			fmt.Fprintf(out, "devrun: %s not built (%s), skipping\n", name, bin)
			continue
		}
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(),
			"QUEUE_URL="+envOr("QUEUE_URL", "sqlite://"+filepath.Join(dataDir, "queue.db")),
			"DATA_DIR="+dataDir,
			// Where Jaeger (docker compose up jaeger, or a local build)
			// listens for OTLP over HTTP; the services say once a minute
			// if nothing is there.
			"OTEL_EXPORTER_OTLP_ENDPOINT="+envOr("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
			// One P per process: the processes take turns with the queue
			// file's write lock, and a writer whose P was handed away
			// during a long cgo call waits for one while holding it. On 2
			// cores this measured ×1.1–1.2 orders/s and a lower p99 in
			// every alternating pair (docs/benchmarks.md). Set GOMAXPROCS
			// to override.
			"GOMAXPROCS="+envOr("GOMAXPROCS", "1"),
		)
		prefix := fmt.Sprintf("%-*s | ", width, name)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			stopAll(procs, cfg.grace)
			return fmt.Errorf("start %s: %w", name, err)
		}
		proc := &process{cmd: cmd, done: make(chan struct{})}
		procs = append(procs, proc)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(proc.done)
			copyPrefixed(stdout, out, &outMu, prefix)
			err := cmd.Wait()
			outMu.Lock()
			fmt.Fprintf(out, "%sexited: %v\n", prefix, exitText(err))
			outMu.Unlock()
			exited <- name
		}()
	}
	if len(procs) == 0 {
		return errors.New("nothing to run: build the binaries first (go tool task build)")
	}

	var runErr error
	select {
	case <-ctx.Done():
	case name := <-exited:
		runErr = fmt.Errorf("%s stopped unexpectedly; stopping the others", name)
	}
	stopAll(procs, cfg.grace)
	wg.Wait()
	return runErr
}

// process is a started child; done closes once it has been waited for.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// stopAll sends SIGTERM to every process and SIGKILLs those that outlive the
// grace period. It returns once every process has exited.
func stopAll(procs []*process, grace time.Duration) {
	for _, p := range procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	expired := false
	for _, p := range procs {
		if !expired {
			select {
			case <-p.done:
				continue
			case <-timer.C:
				expired = true
			}
		}
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func copyPrefixed(r io.Reader, w io.Writer, mu *sync.Mutex, prefix string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		mu.Lock()
		fmt.Fprintf(w, "%s%s\n", prefix, sc.Text())
		mu.Unlock()
	}
}

func exitText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
