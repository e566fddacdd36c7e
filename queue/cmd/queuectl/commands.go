package main

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
	"github.com/orderflow/orderflow/queue/postgres"
	"github.com/orderflow/orderflow/queue/sqlite"
)

func open(ctx context.Context, g globals) (backend.Backend, error) {
	// A URL that cannot name a queue is a mistake in the command line,
	// as an in-process one is; only opening tells the rest.
	if err := queue.ValidateURL(g.queueURL); err != nil {
		return nil, usageError{err.Error()}
	}
	if queue.IsInProcess(g.queueURL) {
		return nil, usageError{fmt.Sprintf("queue URL %q names a queue inside one process, which queuectl cannot share with the services: give the sqlite:// or postgres:// URL they use", g.queueURL)}
	}
	// Open the queue as it is: create no file or table (a mistyped URL
	// must not make a queue), delete nothing (a read-only role may run
	// the read commands).
	b, err := queue.OpenBackend(ctx, queue.Config{
		URL:      g.queueURL,
		SQLite:   sqlite.Config{MustExist: true},
		Postgres: postgres.Config{MustExist: true},
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// subFlags returns the flag set of command name. It also takes the global
// flags, so that they may come after the command too (queuectl dlq list
// --json); they default to what was given before it.
func subFlags(g *globals, name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(g.stderr)
	fs.StringVar(&g.queueURL, "queue-url", g.queueURL, "the queue (global flag; also accepted here)")
	fs.BoolVar(&g.json, "json", g.json, "print JSON instead of tables (global flag; also accepted here)")
	return fs
}

func printJSON(g globals, v any) error {
	enc := json.NewEncoder(escapingWriter{g.stdout})
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parseArgs parses args with fs and returns the arguments that are not
// flags. Flags may come before, between or after them (dlq show 7 --json),
// as Go's flag package alone would stop at the first argument; everything
// after "--" is an argument.
func parseArgs(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	var positional []string
	for {
		if err := parseFlags(fs, args, stdout); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

func noArgs(g *globals, fs *flag.FlagSet, args []string) error {
	rest, err := parseArgs(fs, args, g.stdout)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{fmt.Sprintf("%s takes no arguments, got %q", fs.Name(), rest)}
	}
	return nil
}

func cmdTopics(ctx context.Context, g globals, args []string) error {
	if err := noArgs(&g, subFlags(&g, "topics"), args); err != nil {
		return err
	}
	b, err := open(ctx, g)
	if err != nil {
		return err
	}
	defer b.Close()
	topics, err := b.Inspector().Topics(ctx)
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(g, topics) // [] when there are none (Inspector.Topics)
	}
	for _, t := range topics {
		fmt.Fprintln(g.stdout, printableText(t))
	}
	return nil
}

func cmdStats(ctx context.Context, g globals, args []string) error {
	if err := noArgs(&g, subFlags(&g, "stats"), args); err != nil {
		return err
	}
	b, err := open(ctx, g)
	if err != nil {
		return err
	}
	defer b.Close()
	stats, err := b.Inspector().Stats(ctx)
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(g, stats)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tSTORED\tDEAD\tGROUP\tDEPTH\tIN FLIGHT\tABANDONED\tRETRYING\tMAX ATTEMPT\tOLDEST")
	for _, s := range stats {
		if len(s.Groups) == 0 {
			fmt.Fprintf(tw, "%s\t%d\t%d\t-\t-\t-\t-\t-\t-\t-\n", printableText(s.Topic), s.Stored, s.DeadLetters)
		}
		for i, gs := range s.Groups {
			topic, stored, dead := printableText(s.Topic), strconv.FormatInt(s.Stored, 10), strconv.FormatInt(s.DeadLetters, 10)
			if i > 0 {
				topic, stored, dead = "", "", ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", topic, stored, dead, printableText(gs.ConsumerGroup), gs.Depth, gs.InFlight, gs.Abandoned, gs.Retrying, gs.MaxAttempt, age(gs.OldestAge, gs.Depth))
		}
	}
	return tw.Flush()
}

func age(d time.Duration, depth int64) string {
	if depth == 0 {
		return "-"
	}
	return d.Round(time.Millisecond).String()
}

// subcommandArgs returns the arguments of command from its subcommand's
// name on, after the global flags that may come between the two (dlq
// --json list); help asked for there is errHelpShown. subcommands names
// them for the error of a command given none.
func subcommandArgs(g *globals, command, subcommands string, args []string) ([]string, error) {
	if len(args) == 0 {
		return nil, usageError{command + " needs a subcommand: " + subcommands}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(g.stdout, usage)
		return nil, errHelpShown
	}
	if strings.HasPrefix(args[0], "-") {
		fs := subFlags(g, command)
		if err := parseFlags(fs, args, g.stdout); err != nil {
			return nil, err
		}
		if args = fs.Args(); len(args) == 0 {
			return nil, usageError{command + " needs a subcommand: " + subcommands}
		}
	}
	return args, nil
}

func cmdDLQ(ctx context.Context, g globals, args []string) error {
	args, err := subcommandArgs(&g, "dlq", "list, show, replay or purge", args)
	if err != nil {
		return err
	}
	switch args[0] {
	case "list", "ls":
		return dlqList(ctx, g, args[1:])
	case "show":
		return dlqShow(ctx, g, args[1:])
	case "replay":
		return dlqReplay(ctx, g, args[1:])
	case "purge":
		return dlqPurge(ctx, g, args[1:])
	default:
		return usageError{fmt.Sprintf("unknown dlq subcommand %q (want list, show, replay or purge)", args[0])}
	}
}

// filterFlags defines the flags that select dead letters into f; the
// function it returns completes f once fs is parsed (--older-than counts
// back from now).
func filterFlags(fs *flag.FlagSet, f *backend.DeadLetterFilter) func(now time.Time) error {
	fs.StringVar(&f.Topic, "topic", "", "only dead letters of this original topic")
	fs.StringVar(&f.ConsumerGroup, "group", "", "only dead letters of this consumer group")
	olderThan := fs.Duration("older-than", 0, "only dead letters last dead-lettered longer ago than this (e.g. 720h); 0: of any age")
	return func(now time.Time) error {
		if *olderThan < 0 {
			return usageError{fmt.Sprintf("%s: --older-than must be 0 or more, got %s", fs.Name(), *olderThan)}
		}
		if *olderThan > 0 {
			f.DeadBefore = now.Add(-*olderThan)
		}
		return nil
	}
}

func dlqList(ctx context.Context, g globals, args []string) error {
	fs := subFlags(&g, "dlq list")
	var f backend.DeadLetterFilter
	completeFilter := filterFlags(fs, &f)
	fs.IntVar(&f.Limit, "limit", 100, "at most this many (1 or more)")
	if err := noArgs(&g, fs, args); err != nil {
		return err
	}
	if err := completeFilter(time.Now()); err != nil {
		return err
	}
	if f.Limit < 1 {
		return usageError{fmt.Sprintf("dlq list: --limit must be at least 1, got %d", f.Limit)}
	}
	b, err := open(ctx, g)
	if err != nil {
		return err
	}
	defer b.Close()
	dls, err := b.DeadLetters().List(ctx, f)
	if err != nil {
		return err
	}
	if g.json {
		out := make([]backend.DeadLetterView, 0, len(dls))
		for _, dl := range dls {
			out = append(out, dl.View())
		}
		return printJSON(g, out)
	}
	if len(dls) == 0 {
		fmt.Fprintln(g.stdout, "no dead letters")
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTOPIC\tGROUP\tATTEMPTS\tDEAD AT\tLAST ERROR")
	for _, dl := range dls {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", dl.ID, printableText(dl.Topic), printableText(dl.ConsumerGroup), dl.Attempts, dl.DeadAt.Format(time.RFC3339), printableText(oneLine(dl.LastError, 80)))
	}
	return tw.Flush()
}

func parseID(fs *flag.FlagSet, args []string) (int64, error) {
	if len(args) != 1 {
		return 0, usageError{fmt.Sprintf("%s needs exactly one dead letter ID", fs.Name())}
	}
	id, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || id <= 0 {
		return 0, usageError{fmt.Sprintf("%s: %q is not a dead letter ID (a positive number from dlq list)", fs.Name(), args[0])}
	}
	return id, nil
}

func dlqShow(ctx context.Context, g globals, args []string) error {
	fs := subFlags(&g, "dlq show")
	rest, err := parseArgs(fs, args, g.stdout)
	if err != nil {
		return err
	}
	id, err := parseID(fs, rest)
	if err != nil {
		return err
	}
	b, err := open(ctx, g)
	if err != nil {
		return err
	}
	defer b.Close()
	dl, err := b.DeadLetters().Get(ctx, id)
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(g, dl.View())
	}
	fmt.Fprintf(g.stdout, "ID:              %d\nMessage UUID:    %s\nTopic:           %s\nConsumer group:  %s\nAttempts:        %d\nFirst failed at: %s\nLast failed at:  %s\nDead at:         %s\nLast error:      %s\nMetadata:\n",
		dl.ID, printableText(dl.MessageUUID), printableText(dl.Topic), printableText(dl.ConsumerGroup), dl.Attempts,
		dl.FirstFailedAt.Format(time.RFC3339Nano), dl.LastFailedAt.Format(time.RFC3339Nano), dl.DeadAt.Format(time.RFC3339Nano), printable([]byte(dl.LastError)))
	keys := make([]string, 0, len(dl.Metadata))
	for k := range dl.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(g.stdout, "  %s: %s\n", printableText(k), printableText(dl.Metadata[k]))
	}
	fmt.Fprintf(g.stdout, "Payload (%d bytes):\n%s\n", len(dl.Payload), printable(dl.Payload))
	return nil
}

func dlqReplay(ctx context.Context, g globals, args []string) error {
	fs := subFlags(&g, "dlq replay")
	var f backend.DeadLetterFilter
	completeFilter := filterFlags(fs, &f)
	all := fs.Bool("all", false, "replay every dead letter (matching --topic/--group/--older-than)")
	rest, err := parseArgs(fs, args, g.stdout)
	if err != nil {
		return err
	}
	if err := completeFilter(time.Now()); err != nil {
		return err
	}
	if *all && len(rest) > 0 || !*all && (f.Topic != "" || f.ConsumerGroup != "" || !f.DeadBefore.IsZero()) {
		return usageError{"dlq replay takes either one ID, or --all with optional --topic/--group/--older-than"}
	}
	if !*all && len(rest) == 0 {
		return usageError{"dlq replay needs one dead letter ID, or --all (with optional --topic/--group/--older-than) for many"}
	}
	var id int64
	if !*all {
		if id, err = parseID(fs, rest); err != nil {
			return err
		}
	}
	b, err := open(ctx, g)
	if err != nil {
		return err
	}
	defer b.Close()
	if *all {
		n, err := queue.ReplayDeadLetters(ctx, b, f)
		if g.json {
			_ = printJSON(g, map[string]any{"replayed": n})
		} else {
			fmt.Fprintf(g.stdout, "replayed %s\n", backend.CountDeadLetters(n))
		}
		return err
	}
	if err := queue.ReplayDeadLetter(ctx, b, id); err != nil {
		return err
	}
	if g.json {
		return printJSON(g, map[string]any{"replayed": 1, "id": id})
	}
	fmt.Fprintf(g.stdout, "replayed dead letter %d\n", id)
	return nil
}

func dlqPurge(ctx context.Context, g globals, args []string) error {
	fs := subFlags(&g, "dlq purge")
	var f backend.DeadLetterFilter
	completeFilter := filterFlags(fs, &f)
	yes := fs.Bool("yes", false, "confirm: the dead letters are deleted for good")
	if err := noArgs(&g, fs, args); err != nil {
		return err
	}
	if err := completeFilter(time.Now()); err != nil {
		return err
	}
	if !*yes {
		return usageError{"dlq purge deletes dead letters for good; add --yes to confirm"}
	}
	b, err := open(ctx, g)
	if err != nil {
		return err
	}
	defer b.Close()
	n, err := b.DeadLetters().Purge(ctx, f)
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(g, map[string]any{"purged": n})
	}
	fmt.Fprintf(g.stdout, "purged %s\n", backend.CountDeadLetters(n))
	return nil
}

func cmdGroup(ctx context.Context, g globals, args []string) error {
	args, err := subcommandArgs(&g, "group", "drop", args)
	if err != nil {
		return err
	}
	switch args[0] {
	case "drop":
		return groupDrop(ctx, g, args[1:])
	default:
		return usageError{fmt.Sprintf("unknown group subcommand %q (want drop)", args[0])}
	}
}

// groupDrop removes a consumer group from a topic (backend.GroupDropper).
// A group or topic the queue does not know is an error (exit status 1)
// naming both and listing what it knows.
func groupDrop(ctx context.Context, g globals, args []string) error {
	fs := subFlags(&g, "group drop")
	yes := fs.Bool("yes", false, "confirm: the group's place in the topic is deleted for good")
	rest, err := parseArgs(fs, args, g.stdout)
	if err != nil {
		return err
	}
	if len(rest) != 2 {
		return usageError{"group drop needs a TOPIC and a GROUP"}
	}
	topic, group := rest[0], rest[1]
	if err := backend.ValidateTopic(topic); err != nil {
		return usageError{err.Error()}
	}
	if group == "" {
		return usageError{"group drop: the consumer group name is empty"}
	}
	if !*yes {
		return usageError{fmt.Sprintf("group drop deletes consumer group %q of topic %q for good: the messages it has not acked are no longer kept for it; stop its services for good first, then add --yes to confirm", group, topic)}
	}
	b, err := open(ctx, g)
	if err != nil {
		return err
	}
	defer b.Close()
	dropper, ok := b.(backend.GroupDropper)
	if !ok {
		return fmt.Errorf("the %s backend cannot drop consumer groups", b.Name())
	}
	dropped, err := dropper.DropGroup(ctx, topic, group)
	if err != nil {
		return knownNames(ctx, b, topic, err)
	}
	if g.json {
		return printJSON(g, dropped)
	}
	fmt.Fprintf(g.stdout, "dropped consumer group %q of topic %q: %s it had not acked no longer kept for it\n",
		group, topic, countMessages(dropped.Pending))
	if dropped.DeadLetters > 0 {
		fmt.Fprintf(g.stdout, "kept its %s of the topic; a replay reaches nobody while the group is not subscribed (see queuectl dlq list --topic %s --group %q; dlq purge with the same filters deletes them)\n",
			backend.CountDeadLetters(int(dropped.DeadLetters)), topic, group)
	}
	return nil
}

// knownNames adds to err, an unknown topic or group of group drop, the
// topics the queue knows or the groups of topic.
func knownNames(ctx context.Context, b backend.Backend, topic string, err error) error {
	switch {
	case errors.Is(err, backend.ErrUnknownTopic):
		topics, lerr := b.Inspector().Topics(ctx)
		if lerr != nil {
			return err
		}
		return fmt.Errorf("%w (known topics: %s)", err, listOrNone(printableTexts(topics)))
	case errors.Is(err, backend.ErrUnknownGroup):
		stats, lerr := b.Inspector().Stats(ctx)
		if lerr != nil {
			return err
		}
		var groups []string
		for _, s := range stats {
			if s.Topic == topic {
				for _, gs := range s.Groups {
					groups = append(groups, printableText(gs.ConsumerGroup))
				}
			}
		}
		return fmt.Errorf("%w (groups of %s: %s)", err, topic, listOrNone(groups))
	}
	return err
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// countMessages is "1 message" or "n messages".
func countMessages(n int64) string {
	if n == 1 {
		return "1 message"
	}
	return fmt.Sprintf("%d messages", n)
}

func cmdTail(ctx context.Context, g globals, args []string) error {
	fs := subFlags(&g, "tail")
	fromStart := fs.Bool("from-start", false, "start with the messages still stored, not only new ones")
	interval := fs.Duration("interval", 100*time.Millisecond, "how often to look for new messages (more than 0)")
	// The topic may come before, between or after the flags.
	rest, err := parseArgs(fs, args, g.stdout)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usageError{"tail needs exactly one TOPIC"}
	}
	topic := rest[0]
	if err := backend.ValidateTopic(topic); err != nil {
		return usageError{err.Error()}
	}
	if *interval <= 0 {
		return usageError{fmt.Sprintf("tail: --interval must be more than 0, got %s", *interval)}
	}
	b, err := open(ctx, g)
	if err != nil {
		return err
	}
	defer b.Close()
	next, err := openTail(ctx, b, topic, *fromStart)
	if err != nil {
		return err
	}
	if err := noteUnknownTopic(ctx, b, topic, g.stderr); err != nil {
		return err
	}
	const batch = 500
	ticker := time.NewTicker(*interval)
	defer ticker.Stop()
	enc := json.NewEncoder(escapingWriter{g.stdout})
	var backoff time.Duration // after a transient error; 0 when the last read worked
	for {
		msgs, err := next(ctx, batch)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !transient(err) {
				return err
			}
			// A dropped connection or a restarting server: try again,
			// from the same position, backing off up to maxTailBackoff.
			backoff = min(max(2*backoff, *interval), maxTailBackoff)
			fmt.Fprintf(g.stderr, "queuectl: tail: %v; retrying in %s\n", err, backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		for _, m := range msgs {
			if g.json {
				if err := enc.Encode(viewMessage(m)); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintf(g.stdout, "%s  %s  %s  type=%s  %s\n", m.CreatedAt.Format("15:04:05.000"), printableText(m.Topic), printableText(m.UUID), printableText(m.Metadata["type"]), oneLine(string(printable(m.Payload)), 160))
		}
		if len(msgs) == batch {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// noteUnknownTopic tells w when the queue knows no topic named topic yet,
// listing those it knows, so that a mistyped name does not leave tail
// waiting in silence. tail waits on anyway: the topic may appear later.
func noteUnknownTopic(ctx context.Context, b backend.Backend, topic string, w io.Writer) error {
	topics, err := b.Inspector().Topics(ctx)
	if err != nil {
		return fmt.Errorf("tail: list topics: %w", err)
	}
	if slices.Contains(topics, topic) {
		return nil
	}
	known := "none"
	if len(topics) > 0 {
		known = strings.Join(printableTexts(topics), ", ")
	}
	fmt.Fprintf(w, "queuectl: tail: no topic %q yet (known: %s); waiting for it\n", topic, known)
	return nil
}

// maxTailBackoff caps the pause between tail's attempts to read after a
// transient error.
const maxTailBackoff = 5 * time.Second

// transient reports whether err may go away by itself, so that tail keeps
// trying: a connection that was dropped or refused, a server shutting
// down or starting up, too many connections, a serialization failure.
// Errors the server reports for any other reason (bad credentials, a
// missing table or privilege, a bad database name) are permanent.
func transient(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"): // connection exception
			return true
		case pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // admin/crash shutdown, cannot connect now
			return true
		case pgErr.Code == "53300", pgErr.Code == "40001", pgErr.Code == "40P01": // too many connections, serialization, deadlock
			return true
		}
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		pgconn.SafeToRetry(err) || pgconn.Timeout(err)
}

// openTail returns a function that reads the next messages of topic each
// time it is called: from the oldest stored one with fromStart, else from
// those published from now on.
//
// PostgreSQL makes messages readable in transaction order, not offset
// order (see postgres.TailPosition), so its tail follows a position of its
// own; the other backends follow the offset (backend.Tailer).
func openTail(ctx context.Context, b backend.Backend, topic string, fromStart bool) (func(ctx context.Context, limit int) ([]backend.StoredMessage, error), error) {
	switch t := b.(type) {
	case *postgres.Backend:
		var pos postgres.TailPosition
		if !fromStart {
			var err error
			if pos, err = t.TailEnd(ctx); err != nil {
				return nil, err
			}
		}
		return func(ctx context.Context, limit int) ([]backend.StoredMessage, error) {
			msgs, next, err := t.ReadTail(ctx, topic, pos, limit)
			pos = next
			return msgs, err
		}, nil
	case backend.Tailer:
		var after int64
		if !fromStart {
			var err error
			if after, err = t.LastOffset(ctx, topic); err != nil {
				return nil, err
			}
		}
		return func(ctx context.Context, limit int) ([]backend.StoredMessage, error) {
			msgs, err := t.ReadAfter(ctx, topic, after, limit)
			if len(msgs) > 0 {
				after = msgs[len(msgs)-1].Offset
			}
			return msgs, err
		}, nil
	default:
		return nil, fmt.Errorf("the %s backend cannot tail topics", b.Name())
	}
}

// messageJSON is a message as tail --json prints it, one per line, with
// the payload shown as for dead letters.
type messageJSON struct {
	Offset        int64             `json:"offset"`
	UUID          string            `json:"uuid"`
	Topic         string            `json:"topic"`
	Payload       *string           `json:"payload,omitempty"`
	PayloadBase64 []byte            `json:"payload_base64,omitempty"`
	Metadata      map[string]string `json:"metadata"`
	CreatedAt     time.Time         `json:"created_at"`
}

func viewMessage(m backend.StoredMessage) messageJSON {
	v := messageJSON{Offset: m.Offset, UUID: m.UUID, Topic: m.Topic, Metadata: m.Metadata, CreatedAt: m.CreatedAt}
	v.Payload, v.PayloadBase64 = backend.ViewPayload(m.Payload)
	if v.Metadata == nil {
		v.Metadata = map[string]string{}
	}
	return v
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > n {
		r := []rune(s)
		return string(r[:n]) + "…"
	}
	return s
}

// printable shows text payloads as they are, and quoted (Go syntax, every
// control character escaped) those that are not valid UTF-8 or hold a
// control character other than newline and tab (see hasControl): a
// payload or an error message may hold terminal escape sequences, which
// must not reach the terminal raw, or bidirectional and invisible format
// characters, which make the terminal show other text than the bytes
// hold (U+202E turns the rest of a line around).
func printable(b []byte) []byte {
	if utf8.Valid(b) && !hasControl(string(b), true) {
		return b
	}
	return []byte(strconv.Quote(string(b)))
}

// printableText is printable for a field shown on one line (a topic, a
// consumer group, metadata, an error in a table): a newline is quoted
// there too.
func printableText(s string) string {
	if utf8.ValidString(s) && !hasControl(s, false) {
		return s
	}
	return strconv.Quote(s)
}

// printableTexts is printableText of each name.
func printableTexts(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = printableText(n)
	}
	return out
}

// escapingWriter writes JSON with the characters hasControl quotes in
// tables escaped as \uXXXX: encoding/json escapes the C0 controls but
// leaves C1 controls and format characters (a right-to-left override)
// raw in strings, where a terminal would act on them. Outside strings JSON
// is ASCII, so the escape is always inside one, where it means the same
// character. Each Write must hold whole characters, as json.Encoder's
// one Write per value does.
type escapingWriter struct{ w io.Writer }

func (e escapingWriter) Write(p []byte) (int, error) {
	if !hasControl(string(p), true) {
		return e.w.Write(p)
	}
	var b strings.Builder
	for _, r := range string(p) {
		if r == '\n' || r == '\t' || !unsafeInTerminal(r) {
			b.WriteRune(r)
			continue
		}
		for _, u := range utf16.Encode([]rune{r}) {
			fmt.Fprintf(&b, `\u%04x`, u)
		}
	}
	if _, err := io.WriteString(e.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// hasControl reports whether s holds a C0 or C1 control character, DEL,
// or a format character (Unicode category Cf: the bidirectional controls
// U+202A–U+202E, U+2066–U+2069, U+200E, U+200F and U+061C, the zero-width
// characters, U+FEFF); newline and tab are allowed when multiline is set.
// strconv.Quote escapes all of them. Broader on purpose than what the
// order API refuses (pkg/plaintext, which takes the zero-width joiner of
// emoji sequences and Persian spelling): a payload shown to an operator
// shows every invisible character, quoted, at the cost of quoting a
// whole payload that holds one legitimately.
func hasControl(s string, multiline bool) bool {
	for _, r := range s {
		if multiline && (r == '\n' || r == '\t') {
			continue
		}
		if unsafeInTerminal(r) {
			return true
		}
	}
	return false
}

// unsafeInTerminal reports the characters hasControl looks for: C0 and
// C1 controls, DEL and the format characters (Unicode category Cf).
func unsafeInTerminal(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}
