// Command queuectl inspects and repairs an orderflow queue: topics, depths
// and lag per consumer group, the dead-letter queue (list, show, replay,
// purge), dropping a consumer group from a topic, and a live tail of a
// topic. It takes the same queue URL as the services.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode reports err on stderr and returns the exit status for it: 0 for
// none, 2 for a mistake in the command line, 1 for anything else.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "queuectl:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// usageError is a mistake in the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// parseFlags parses args with fs, whose output is the command's stderr.
// Asked for help (-h, --help), it prints fs's usage to stdout and returns
// errHelpShown, which run turns into success. A flag fs does not know, or a
// bad value, is a usageError, reported with the usage on stderr.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	usage := fs.Usage
	fs.Usage = func() {} // printed below, to the writer that fits
	err := fs.Parse(args)
	fs.Usage = usage
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		stderr := fs.Output()
		fs.SetOutput(stdout)
		fs.Usage()
		fs.SetOutput(stderr)
		return errHelpShown
	default:
		fs.Usage()
		return usageError{err.Error()}
	}
}

// errHelpShown ends a command whose usage was asked for and printed; run
// returns nil for it.
var errHelpShown = errors.New("help shown")

const usage = `queuectl — inspect and repair an orderflow queue

Usage:
  queuectl [global flags] <command> [flags] [args]

The global flags may also come after the command (queuectl dlq list --json),
and any flag before or after the arguments (queuectl dlq show 7 --json).

Commands:
  topics                       list the topics the queue knows
  stats                        per topic: stored messages, dead letters; per consumer
                               group: depth (lag), in flight, abandoned (handed to a
                               consumer that died without an outcome), retrying,
                               the highest attempt of a message not yet acked,
                               oldest age
  dlq list [--topic T] [--group G] [--older-than D] [--limit N]
                               list dead letters (at most N, 1 or more; default 100)
  dlq show ID                  one dead letter with payload, metadata and last error
  dlq replay ID | --all [--topic T] [--group G] [--older-than D]
                               put dead letters back on their original topic, for
                               their consumer group only, with attempts reset,
                               stamped as a replay (a "replay" event in the trace)
  dlq purge [--topic T] [--group G] [--older-than D] --yes
                               delete dead letters for good (nothing else deletes
                               them: --older-than 720h keeps the last 30 days)
  group drop TOPIC GROUP --yes
                               remove a consumer group from a topic for good: its
                               subscription, and the messages it has not acked
                               no longer kept for it (the services' next
                               collection deletes those every other group acked;
                               SQLite: a topic left without groups keeps its
                               messages for the orphan retention, PostgreSQL:
                               until a group subscribes again). For a group whose
                               service was renamed or retired, or made by mistake:
                               stats shows it, its depth growing. Stop its
                               services for good first: a process of the group
                               that subscribes again (one starting) registers it
                               anew, as a new group that receives every message
                               still stored. Its dead letters are kept
                               (a replay of one reaches nobody while the group
                               is not subscribed). An unknown TOPIC or GROUP
                               is an error
  tail TOPIC [--from-start] [--interval D]
                               print a topic's messages as they are published
                               (--from-start: the stored ones first), checking
                               every D (default 100ms); SQLite and PostgreSQL.
                               It only reads: it acks nothing and joins no
                               consumer group. A dropped connection or a
                               restarting server is retried (backing off up
                               to 5s, from where it was). A TOPIC the queue
                               does not know yet is said on stderr, with the
                               known ones, and waited for. Ctrl-C stops it.
                               SQLite: it shows what is stored when it looks;
                               a message every group acked and the queue
                               collected between two looks is not shown

Global flags:
  --queue-url URL   the queue (env QUEUE_URL; default sqlite://data/queue.db);
                    not memory://, a queue inside one process
                    e.g. sqlite://data/queue.db, postgres://postgres@127.0.0.1:5432/orderflow
  --json            print JSON instead of tables (tail: one object per line).
                    Payloads are shown as the admin API's GET /dlq shows them:
                    "payload" holds the text when the payload is valid UTF-8;
                    otherwise "payload" is absent and "payload_base64" holds
                    the bytes in base64

Examples:
  queuectl stats
  queuectl --json dlq list --topic payment.commands
  queuectl dlq replay 42
  queuectl group drop payment.commands old-payment-service --yes
  QUEUE_URL=postgres://postgres@127.0.0.1/test queuectl dlq replay --all
`

type globals struct {
	queueURL string
	json     bool
	stdout   io.Writer
	stderr   io.Writer
}

// run runs the command line args (without the program name). Asking for
// help (-h, --help, help, or -h after a command) prints it and returns nil.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, stdout, stderr)
	if errors.Is(err, errHelpShown) {
		return nil
	}
	return err
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("queuectl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage) }
	g := globals{stdout: stdout, stderr: stderr}
	defURL := os.Getenv("QUEUE_URL")
	if defURL == "" {
		defURL = "sqlite://data/queue.db"
	}
	fs.StringVar(&g.queueURL, "queue-url", defURL, "queue URL")
	fs.BoolVar(&g.json, "json", false, "print JSON")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return usageError{"no command given"}
	}
	cmd, cmdArgs := rest[0], rest[1:]
	switch cmd {
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	case "topics":
		return cmdTopics(ctx, g, cmdArgs)
	case "stats":
		return cmdStats(ctx, g, cmdArgs)
	case "dlq":
		return cmdDLQ(ctx, g, cmdArgs)
	case "group":
		return cmdGroup(ctx, g, cmdArgs)
	case "tail":
		return cmdTail(ctx, g, cmdArgs)
	default:
		fs.Usage()
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
}
