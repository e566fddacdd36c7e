package bench

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/queue"
)

// Sizes and shapes. Every one can be changed through the environment for a
// longer or differently shaped run, e.g.
//
//	QUEUE_BENCH_MESSAGES=1000000 go test -run '^$' -bench Throughput -benchtime 1x -timeout 30m ./bench/
var (
	// Messages per batched-publishing run (GoChannel and SQLite).
	messagesBatched = envInt("QUEUE_BENCH_MESSAGES", 200_000)
	// Messages per one-goroutine-per-publisher run (GoChannel and SQLite).
	messagesSingle = envInt("QUEUE_BENCH_MESSAGES_SINGLE", 50_000)
	// Messages per PostgreSQL run (both modes): watermill-sql consumes a
	// few hundred per second.
	messagesPostgres = envInt("QUEUE_BENCH_MESSAGES_POSTGRES", 5_000)
	// Messages of the resources run (only with QUEUE_BENCH_MILLION=1).
	messagesMillion = envInt("QUEUE_BENCH_MILLION_MESSAGES", 1_000_000)

	publisherProcs  = envInt("QUEUE_BENCH_PUBLISHERS", 2)          // publisher processes (or in-process publishers)
	consumerProcs   = envInt("QUEUE_BENCH_CONSUMERS", 4)           // consumer processes, one group
	batchGoroutines = envInt("QUEUE_BENCH_PUBLISH_GOROUTINES", 64) // concurrent Publish callers per publisher, batched mode
	concurrency     = envInt("QUEUE_BENCH_CONCURRENCY", 64)        // router concurrency of each consumer
	latencyRate     = envInt("QUEUE_BENCH_RATE", 2000)             // msg/s of the latency runs
	latencySeconds  = envInt("QUEUE_BENCH_LATENCY_SECONDS", 4)     // length of the latency runs
	idleSeconds     = envInt("QUEUE_BENCH_IDLE_SECONDS", 5)        // idle CPU measurement window
	idleConsumers   = envInt("QUEUE_BENCH_IDLE_CONSUMERS", 4)      // idle consumer processes
	sqliteParams    = os.Getenv("QUEUE_BENCH_SQLITE_PARAMS")       // extra sqlite:// URL parameters, e.g. claim_batch=128
)

const (
	postgresEnv = "ORDERFLOW_TEST_POSTGRES_URL" // postgres://… of a test server; unset skips PostgreSQL
	millionEnv  = "QUEUE_BENCH_MILLION"         // "1" runs BenchmarkResources
	benchTopic  = "bench_load"
	benchGroup  = "bench_workers"
)

// publishMode is how publishers call Publish.
type publishMode struct {
	name       string
	goroutines int // concurrent Publish callers per publisher
	messages   int // GoChannel and SQLite; PostgreSQL uses messagesPostgres
}

func modes() []publishMode {
	return []publishMode{
		{name: "single", goroutines: 1, messages: messagesSingle},
		{name: "batched", goroutines: batchGoroutines, messages: messagesBatched},
	}
}

// goChannelRates remembers GoChannel's consumed msg/s per mode in this run,
// so that the other backends can report themselves as a share of it.
var (
	goChannelMu    sync.Mutex
	goChannelRates = map[string]float64{}
)

// throughput is one run's outcome.
type throughput struct {
	messages   int
	handled    int64 // including duplicates; -1 when unknown
	publishDur time.Duration
	consumeDur time.Duration
	peakRSSKiB int64 // largest child; 0 for in-process runs
	rss        []processRSS
	cpuUtil    float64 // % of all CPUs used by the processes; 0 when unknown
	// SQLite: the write lock held and waited for, summed over the
	// processes (their whole lives); 0 elsewhere.
	lockHeld, lockWait time.Duration
	// SQLite: write transactions committed by all the processes.
	writeTxs int64
	// Bytes the processes wrote (their whole lives); 0 for in-process runs.
	wrote int64
}

type processRSS struct {
	name string
	kib  int64
}

func (r throughput) report(b *testing.B, mode string, isGoChannel bool) {
	consumed := float64(r.messages) / r.consumeDur.Seconds()
	b.ReportMetric(consumed, "consumed_msgs/s")
	b.ReportMetric(float64(r.messages)/r.publishDur.Seconds(), "published_msgs/s")
	if r.handled >= 0 {
		b.ReportMetric(float64(r.handled-int64(r.messages)), "duplicates")
	}
	if r.peakRSSKiB > 0 {
		b.ReportMetric(float64(r.peakRSSKiB)/1024, "peak_rss_MB")
	}
	if r.wrote > 0 {
		// Mostly whole pages written to the WAL and checkpointed: what a
		// message costs a VM whose writes are slow.
		b.ReportMetric(float64(r.wrote)/float64(r.messages), "written_B/msg")
	}
	if r.cpuUtil > 0 {
		b.ReportMetric(r.cpuUtil, "cpu_util_%")
	}
	if r.lockHeld > 0 {
		// Near 100 %: the file's one write lock is what limits the run.
		b.ReportMetric(100*r.lockHeld.Seconds()/r.consumeDur.Seconds(), "lock_held_%")
		b.ReportMetric(100*r.lockWait.Seconds()/r.consumeDur.Seconds(), "lock_wait_%")
		// Each one hands the write lock between processes: fewer per
		// message is what group commit buys.
		b.ReportMetric(float64(r.writeTxs)/float64(r.messages), "write_tx/msg")
	}
	goChannelMu.Lock()
	defer goChannelMu.Unlock()
	if isGoChannel {
		goChannelRates[mode] = consumed
	} else if gc := goChannelRates[mode]; gc > 0 {
		b.ReportMetric(100*consumed/gc, "%_of_gochannel")
	}
}

// BenchmarkThroughput publishes a fixed number of ~200-byte messages and
// measures, from the moment every process is ready until the last message
// is handled, consumed (and published) messages per second. "single": each
// publisher calls Publish from one goroutine, one message per call;
// "batched": each publisher calls Publish from many goroutines at once,
// which the SQLite backend commits together. Consumers ack at once.
func BenchmarkThroughput(b *testing.B) {
	for _, m := range modes() {
		b.Run("gochannel/"+m.name, func(b *testing.B) {
			var r throughput
			for range b.N {
				r = runGoChannel(b, m)
			}
			r.report(b, m.name, true)
		})
		b.Run("sqlite-1proc/"+m.name, func(b *testing.B) {
			var r throughput
			for range b.N {
				r = runSQLiteInProcess(b, m)
			}
			r.report(b, m.name, false)
		})
		b.Run(fmt.Sprintf("sqlite-%dpub-%dcons/%s", publisherProcs, consumerProcs, m.name), func(b *testing.B) {
			var r throughput
			for range b.N {
				r = runProcesses(b, sqliteURL(b.TempDir()), m.goroutines, m.messages, nil)
			}
			r.report(b, m.name, false)
		})
		b.Run(fmt.Sprintf("postgres-%dpub-%dcons/%s", publisherProcs, consumerProcs, m.name), func(b *testing.B) {
			var r throughput
			for range b.N {
				r = runProcesses(b, postgresURL(b), m.goroutines, messagesPostgres, nil)
			}
			r.report(b, m.name, false)
		})
	}
}

func sqliteURL(dir string) string {
	u := "sqlite://" + filepath.Join(dir, "queue.db")
	if sqliteParams != "" {
		u += "?" + sqliteParams
	}
	return u
}

// split divides n messages among parts publishers.
func split(n, parts, i int) int {
	share := n / parts
	if i < n%parts {
		share++
	}
	return share
}

// runner is what the in-process runs need of a router.
type runner interface {
	Run(context.Context) error
	Running() <-chan struct{}
}

// watermillRouter is Watermill's router as a runner: its Running returns
// a bidirectional channel.
type watermillRouter struct{ *message.Router }

func (r watermillRouter) Running() <-chan struct{} { return r.Router.Running() }

func runGoChannel(b *testing.B, m publishMode) throughput {
	ps := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, watermill.NopLogger{})
	defer ps.Close()
	r, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	t := newTally(false)
	r.AddConsumerHandler("bench", benchTopic, ps, t.handle)
	return runInProcess(b, ps, watermillRouter{r}, t, m)
}

func runSQLiteInProcess(b *testing.B, m publishMode) throughput {
	ctx := context.Background()
	q, err := queue.Open(ctx, queue.Config{URL: sqliteURL(b.TempDir())})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	r, err := q.NewRouter(queue.RouterConfig{ConsumerGroup: benchGroup, Concurrency: concurrency})
	if err != nil {
		b.Fatal(err)
	}
	t := newTally(false)
	r.Handle("bench", benchTopic, t.handle)
	return runInProcess(b, q.Publisher(), r, t, m)
}

// runInProcess runs publisherProcs publishers as goroutine groups of this
// process against a router of the same process.
func runInProcess(b *testing.B, pub message.Publisher, r runner, t *tally, m publishMode) throughput {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runErr; err != nil {
			b.Errorf("router: %v", err)
		}
	}()
	select {
	case <-r.Running():
	case err := <-runErr:
		b.Fatalf("router stopped before running: %v", err)
	}

	ticksBefore, _ := cpuTicks(os.Getpid())
	start := time.Now()
	var pubWG sync.WaitGroup
	pubErrs := make(chan error, publisherProcs)
	var pubEnd time.Time
	var pubEndMu sync.Mutex
	for p := range publisherProcs {
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			if err := publishN(ctx, pub, benchTopic, split(m.messages, publisherProcs, p), m.goroutines); err != nil {
				pubErrs <- err
			}
			pubEndMu.Lock()
			if now := time.Now(); now.After(pubEnd) {
				pubEnd = now
			}
			pubEndMu.Unlock()
		}()
	}
	deadline := time.Now().Add(timeoutFor(m.messages))
	for t.n.Load() < int64(m.messages) {
		select {
		case err := <-pubErrs:
			b.Fatal(err)
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("consumed %d of %d messages in time", t.n.Load(), m.messages)
		}
		time.Sleep(time.Millisecond)
	}
	end := time.Unix(0, t.lastNs.Load())
	ticksAfter, _ := cpuTicks(os.Getpid())
	pubWG.Wait()
	return throughput{
		messages:   m.messages,
		handled:    t.n.Load(),
		publishDur: pubEnd.Sub(start),
		consumeDur: end.Sub(start),
		cpuUtil:    100 * float64(ticksAfter-ticksBefore) / clockTicks / end.Sub(start).Seconds() / float64(runtime.NumCPU()),
	}
}

func timeoutFor(messages int) time.Duration {
	return 2*time.Minute + time.Duration(messages)*time.Millisecond
}

// runProcesses runs consumerProcs consumer processes of one group, then
// publisherProcs publisher processes with goroutines Publish callers each,
// and measures from the publishers' start signal. atEnd, if not nil, runs
// after every message was consumed and before the consumers stop.
func runProcesses(b *testing.B, queueURL string, goroutines, messages int, atEnd func(consumers, publishers []*child)) throughput {
	b.Helper()
	common := []string{envURL + "=" + queueURL, envTopic + "=" + benchTopic}
	var consumers []*child
	for i := range consumerProcs {
		consumers = append(consumers, startChild(b, fmt.Sprintf("consumer%d", i), "consume",
			append(common, envGroup+"="+benchGroup, envConcurrency+"="+strconv.Itoa(concurrency))...))
	}
	waitReady(b, consumers...)
	var publishers []*child
	for i := range publisherProcs {
		publishers = append(publishers, startChild(b, fmt.Sprintf("publisher%d", i), "publish",
			append(common, envCount+"="+strconv.Itoa(split(messages, publisherProcs, i)), envGoroutines+"="+strconv.Itoa(goroutines))...))
	}
	waitReady(b, publishers...)

	all := append(append([]*child{}, publishers...), consumers...)
	ticksBefore := sumTicks(all)
	start := time.Now()
	signalGo(b, publishers...)
	endNs := waitConsumed(b, consumers, messages, timeoutFor(messages))
	// Publishers are done by now; the ones that exited already report 0,
	// so take their CPU time from the kernel's account instead.
	ticksAfter := sumTicks(consumers)
	waitExited(b, time.Minute, publishers...)
	for _, p := range publishers {
		ticksAfter += p.exitTicks()
	}
	var pubEndNs int64
	for _, p := range publishers {
		pubEndNs = max(pubEndNs, p.doneNs.Load())
	}
	if atEnd != nil {
		atEnd(consumers, publishers)
	}
	stopChildren(b, consumers...)

	r := throughput{
		messages:   messages,
		publishDur: time.Unix(0, pubEndNs).Sub(start),
		consumeDur: time.Unix(0, endNs).Sub(start),
	}
	// CPU used by all the processes while messages flowed, as a share of
	// the machine: near 100% means CPU-bound, well below means waiting.
	r.cpuUtil = 100 * float64(ticksAfter-ticksBefore) / clockTicks / r.consumeDur.Seconds() / float64(runtime.NumCPU())
	for _, c := range append(publishers, consumers...) {
		r.peakRSSKiB = max(r.peakRSSKiB, c.peakRSSKiB())
		r.rss = append(r.rss, processRSS{c.name, c.peakRSSKiB()})
		r.lockHeld += time.Duration(c.lockHeldNs.Load())
		r.lockWait += time.Duration(c.lockWaitNs.Load())
		r.writeTxs += c.writeTxs.Load()
		r.wrote += c.wrote.Load()
	}
	for _, c := range consumers {
		if c.final.Load() < 0 {
			r.handled = -1
			break
		}
		r.handled += c.final.Load()
	}
	return r
}

// postgresURL returns ORDERFLOW_TEST_POSTGRES_URL with its search_path set
// to a fresh schema, dropped when b ends; without the variable it skips b.
func postgresURL(b *testing.B) string {
	b.Helper()
	base := os.Getenv(postgresEnv)
	if base == "" {
		b.Skipf("%s is not set; set it to a postgres:// URL (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to benchmark PostgreSQL", postgresEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		b.Fatalf("connect to %s: %v", postgresEnv, err)
	}
	defer conn.Close(ctx)
	schema := "queue_bench_" + strings.ToLower(watermill.NewULID())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		b.Fatalf("create schema: %v", err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			b.Errorf("connect to drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			b.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		b.Fatalf("parse %s: %v", postgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// BenchmarkLatency publishes at a fixed rate (QUEUE_BENCH_RATE, 2,000 msg/s)
// for a few seconds and measures publish→handler start from a timestamp in
// the payload (taken just before Publish is called). The consumer runs in
// another process except for GoChannel. The first quarter second is warm-up
// and not counted.
func BenchmarkLatency(b *testing.B) {
	b.Run("gochannel", func(b *testing.B) {
		for range b.N {
			ps := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, watermill.NopLogger{})
			r, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
			if err != nil {
				b.Fatal(err)
			}
			t := newTally(true)
			r.AddConsumerHandler("bench", benchTopic, ps, t.handle)
			ctx, cancel := context.WithCancel(context.Background())
			runErr := make(chan error, 1)
			go func() { runErr <- r.Run(ctx) }()
			<-r.Running()
			start := time.Now()
			n, took, err := publishPaced(ctx, ps, benchTopic, latencyRate, time.Duration(latencySeconds)*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			publishing := time.Since(start)
			for t.n.Load() < int64(n) {
				time.Sleep(time.Millisecond)
			}
			cancel()
			<-runErr
			_ = ps.Close()
			reportLatency(b, t.samples(), took, n, publishing, time.Unix(0, t.lastNs.Load()).Sub(start))
		}
	})
	b.Run("sqlite-procs", func(b *testing.B) {
		for range b.N {
			latencyAcrossProcesses(b, sqliteURL(b.TempDir()))
		}
	})
	b.Run("postgres-procs", func(b *testing.B) {
		for range b.N {
			latencyAcrossProcesses(b, postgresURL(b))
		}
	})
}

// latencyAcrossProcesses publishes from this process to one consumer
// process.
func latencyAcrossProcesses(b *testing.B, queueURL string) {
	b.Helper()
	out := filepath.Join(b.TempDir(), "latency.txt")
	c := startChild(b, "consumer", "consume", envURL+"="+queueURL, envTopic+"="+benchTopic,
		envGroup+"="+benchGroup, envConcurrency+"="+strconv.Itoa(concurrency), envLatencyOut+"="+out)
	waitReady(b, c)
	ctx := context.Background()
	q, err := queue.Open(ctx, queue.Config{URL: queueURL})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	start := time.Now()
	n, took, err := publishPaced(ctx, q.Publisher(), benchTopic, latencyRate, time.Duration(latencySeconds)*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	publishing := time.Since(start)
	endNs := waitConsumed(b, []*child{c}, n, timeoutFor(n))
	stopChildren(b, c)
	samples, err := readLatencies(out)
	if err != nil {
		b.Fatal(err)
	}
	reportLatency(b, samples, took, n, publishing, time.Unix(0, endNs).Sub(start))
}

// reportLatency reports publish→handler percentiles, and those of the
// Publish call alone (the publisher's own commit), after the warm-up; the
// rate offered while publishing, and the rate consumed until the last
// message was handled (lower when the consumer could not keep up).
func reportLatency(b *testing.B, samples []latencySample, took []time.Duration, published int, publishing, consuming time.Duration) {
	warmup := latencyRate / 4
	var ms, pubMs []float64
	for _, s := range samples {
		if s.seq >= warmup {
			ms = append(ms, float64(s.ns)/1e6)
		}
	}
	for seq, d := range took {
		if seq >= warmup && d > 0 {
			pubMs = append(pubMs, float64(d)/1e6)
		}
	}
	if len(ms) == 0 {
		b.Fatalf("no latency samples after warm-up (%d samples in all)", len(samples))
	}
	slices.Sort(ms)
	slices.Sort(pubMs)
	b.ReportMetric(percentile(ms, 50), "p50_ms")
	b.ReportMetric(percentile(ms, 99), "p99_ms")
	b.ReportMetric(ms[len(ms)-1], "max_ms")
	b.ReportMetric(percentile(pubMs, 50), "publish_p50_ms")
	b.ReportMetric(percentile(pubMs, 99), "publish_p99_ms")
	b.ReportMetric(float64(published)/publishing.Seconds(), "offered_msgs/s")
	b.ReportMetric(float64(published)/consuming.Seconds(), "consumed_msgs/s")
	b.ReportMetric(float64(len(ms)), "samples")
}

// BenchmarkIdleCPU starts four consumer processes on one SQLite file with
// nothing to do and measures their CPU time (utime+stime from /proc) over
// a few seconds, as a percentage of one core, summed.
func BenchmarkIdleCPU(b *testing.B) {
	b.Run(fmt.Sprintf("sqlite-%dconsumers", idleConsumers), func(b *testing.B) {
		for range b.N {
			queueURL := sqliteURL(b.TempDir())
			var consumers []*child
			for i := range idleConsumers {
				consumers = append(consumers, startChild(b, fmt.Sprintf("consumer%d", i), "consume",
					envURL+"="+queueURL, envTopic+"="+benchTopic, envGroup+"="+benchGroup,
					envConcurrency+"="+strconv.Itoa(concurrency)))
			}
			waitReady(b, consumers...)
			time.Sleep(time.Second) // let start-up work and poll back-off settle
			before := make([]time.Duration, len(consumers))
			for i, c := range consumers {
				var err error
				if before[i], err = cpuTime(c.pid()); err != nil {
					b.Fatal(err)
				}
			}
			start := time.Now()
			time.Sleep(time.Duration(idleSeconds) * time.Second)
			var total, worst float64
			for i, c := range consumers {
				after, err := cpuTime(c.pid())
				if err != nil {
					b.Fatal(err)
				}
				pct := 100 * (after - before[i]).Seconds() / time.Since(start).Seconds()
				total += pct
				worst = max(worst, pct)
			}
			stopChildren(b, consumers...)
			b.ReportMetric(total, "idle_cpu_%")
			b.ReportMetric(worst, "max_proc_cpu_%")
		}
	})
}

// BenchmarkResources (QUEUE_BENCH_MILLION=1) passes a million messages
// through one SQLite file (two publisher processes with batched publishing,
// consumer processes of one group acking every message) and reports the
// file and WAL sizes — peak during the run, after the garbage collector
// caught up, and after every process closed the file — and each process's
// peak RSS.
func BenchmarkResources(b *testing.B) {
	if os.Getenv(millionEnv) != "1" {
		b.Skipf("set %s=1 to pass %d messages through one SQLite file (about a minute)", millionEnv, messagesMillion)
	}
	b.Run(fmt.Sprintf("sqlite-%dmsgs", messagesMillion), func(b *testing.B) {
		for range b.N {
			dir := b.TempDir()
			path := filepath.Join(dir, "queue.db")
			var peakDB, peakWAL int64
			stopSampling := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				tick := time.NewTicker(50 * time.Millisecond)
				defer tick.Stop()
				for {
					peakDB = max(peakDB, fileSize(path))
					peakWAL = max(peakWAL, fileSize(path+"-wal"))
					select {
					case <-stopSampling:
						return
					case <-tick.C:
					}
				}
			}()
			var liveDB, liveWAL, free, shrunk int64
			r := runProcesses(b, sqliteURL(dir), batchGoroutines, messagesMillion, func(consumers, publishers []*child) {
				free = waitCollected(b, path, time.Minute)
				liveDB, liveWAL = fileSize(path), fileSize(path+"-wal")
				// Garbage collection hands free pages back (incremental
				// vacuum) while the processes run: give it a bounded while.
				deadline := time.Now().Add(30 * time.Second)
				for shrunk = fileSize(path); shrunk > 16<<20 && time.Now().Before(deadline); shrunk = fileSize(path) {
					time.Sleep(250 * time.Millisecond)
				}
			})
			close(stopSampling)
			<-sampled
			r.report(b, "batched-million", false)
			for _, p := range r.rss {
				b.ReportMetric(float64(p.kib)/1024, "rss_"+p.name+"_MB")
			}
			b.ReportMetric(mb(peakDB), "db_peak_MB")
			b.ReportMetric(mb(peakWAL), "wal_peak_MB")
			b.ReportMetric(mb(liveDB), "db_MB")
			b.ReportMetric(mb(free), "db_free_MB")
			b.ReportMetric(mb(shrunk), "db_after_vacuum_MB")
			b.ReportMetric(mb(liveWAL), "wal_MB")
			b.ReportMetric(mb(fileSize(path)), "db_closed_MB")
			b.ReportMetric(mb(fileSize(path+"-wal")), "wal_closed_MB")
		}
	})
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// waitCollected waits until the garbage collectors of the running processes
// deleted every acknowledged message, and returns how many bytes of the
// file are then free pages (kept by SQLite for reuse, not returned to the
// file system).
func waitCollected(b *testing.B, path string, timeout time.Duration) int64 {
	b.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_query_only=1&_busy_timeout=30000")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(timeout)
	for {
		var n int64
		if err := db.QueryRow(`SELECT COUNT(*) FROM queue_messages`).Scan(&n); err != nil {
			b.Fatalf("count stored messages: %v", err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d acknowledged messages still stored after %s", n, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var pages, size int64
	if err := db.QueryRow(`PRAGMA freelist_count`).Scan(&pages); err != nil {
		b.Fatalf("freelist_count: %v", err)
	}
	if err := db.QueryRow(`PRAGMA page_size`).Scan(&size); err != nil {
		b.Fatalf("page_size: %v", err)
	}
	return pages * size
}

// BenchmarkSQLiteCeiling measures what this machine's SQLite does without
// the queue: 200-byte rows inserted by one process into a WAL file with
// synchronous=NORMAL, one row per transaction and 64 per transaction. The
// queue's figures depend on the machine mostly through these (docs/design.md §9
// quotes 67k–92k single-row commits/s for the machine its targets were
// measured on), so they are the yardstick for comparing runs on different
// machines.
func BenchmarkSQLiteCeiling(b *testing.B) {
	for _, perTx := range []int{1, 64} {
		b.Run(fmt.Sprintf("rows-per-tx-%d", perTx), func(b *testing.B) {
			db, err := sql.Open("sqlite3", "file:"+filepath.Join(b.TempDir(), "ceiling.db")+"?_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate")
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			ctx := context.Background()
			if _, err := db.ExecContext(ctx, `CREATE TABLE rows (id INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB)`); err != nil {
				b.Fatal(err)
			}
			insert, err := db.PrepareContext(ctx, `INSERT INTO rows (payload) VALUES (?)`)
			if err != nil {
				b.Fatal(err)
			}
			payload := newPayload(0)
			const window = 2 * time.Second
			rows := 0
			start := time.Now()
			for time.Since(start) < window {
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				st := tx.StmtContext(ctx, insert)
				for range perTx {
					if _, err := st.ExecContext(ctx, payload); err != nil {
						b.Fatal(err)
					}
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
				rows += perTx
			}
			elapsed := time.Since(start).Seconds()
			b.ReportMetric(float64(rows)/elapsed, "rows/s")
			b.ReportMetric(float64(rows/perTx)/elapsed, "commits/s")
		})
	}
}
