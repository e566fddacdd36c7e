package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/mattn/go-sqlite3" // the driver of the commit probe
)

// designCommitsPerSecond is the raw SQLite commit rate of the machine the
// design's targets were set on (docs/design.md §9: 67,000–92,000
// single-row commits/s from one process). The throughput targets assume a
// disk and CPUs of that speed.
const designCommitsPerSecond = 67_000

// commitProbeWindow is how long the commit probe runs: long enough to
// smooth out scheduling noise, short next to the phases it precedes.
const commitProbeWindow = time.Second

// probeCommits measures this host's single-row SQLite commit rate the way
// queue/bench's BenchmarkSQLiteCeiling does (WAL, synchronous=NORMAL, one
// connection, one INSERT per transaction) in a file under dir. Every write
// of the queue and the services' outboxes ends in such commits, so the
// rate says how far this host's figures can be compared with another's.
func probeCommits(ctx context.Context, dir string) (float64, error) {
	path := filepath.Join(dir, "commit-probe.db")
	defer func() {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			_ = os.Remove(path + suffix)
		}
	}()
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate")
	if err != nil {
		return 0, fmt.Errorf("commit probe: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE rows (id INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB)`); err != nil {
		return 0, fmt.Errorf("commit probe: %w", err)
	}
	insert, err := db.PrepareContext(ctx, `INSERT INTO rows (payload) VALUES (?)`)
	if err != nil {
		return 0, fmt.Errorf("commit probe: %w", err)
	}
	defer insert.Close()
	payload := make([]byte, 200) // the queue benchmarks' message size
	commits := 0
	start := time.Now()
	for time.Since(start) < commitProbeWindow {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		// BEGIN, INSERT, COMMIT, as the benchmark does, so that the two
		// figures can be compared.
		if err := commitOne(ctx, db, insert, payload); err != nil {
			return 0, fmt.Errorf("commit probe: %w", err)
		}
		commits++
	}
	return float64(commits) / time.Since(start).Seconds(), nil
}

func commitOne(ctx context.Context, db *sql.DB, insert *sql.Stmt, payload []byte) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if _, err := tx.StmtContext(ctx, insert).ExecContext(ctx, payload); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// cpuTimes is the "cpu" line of /proc/stat: all CPUs' time in ticks.
type cpuTimes struct {
	total, steal uint64
}

// readCPUTimes reads /proc/stat; ok is false where there is none.
func readCPUTimes() (t cpuTimes, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseCPUTimes(line)
}

// parseCPUTimes parses "cpu user nice system idle iowait irq softirq steal
// guest guest_nice". Guest time is already counted in user and nice, so it
// is left out of the total.
func parseCPUTimes(line string) (t cpuTimes, ok bool) {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return cpuTimes{}, false
	}
	for i, s := range f[1:9] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return cpuTimes{}, false
		}
		t.total += v
		if i == 7 {
			t.steal = v
		}
	}
	return t, true
}

// stealPercent is the share of the CPUs' time between two readings that
// the hypervisor gave to other guests: on a VM it lowers every figure,
// and it varies from run to run.
func stealPercent(from, to cpuTimes) (float64, bool) {
	if to.total <= from.total || to.steal < from.steal {
		return 0, false
	}
	return 100 * float64(to.steal-from.steal) / float64(to.total-from.total), true
}
