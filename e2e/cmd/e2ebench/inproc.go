package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/orderflow/orderflow/e2e/inprocess"
)

// inProcess runs one variant with the four services in this process (via
// e2e/inprocess) on queueURL. With --cpuprofile-dir it records a CPU
// profile of the throughput phase into profile.
func (b *bench) inProcess(ctx context.Context, key, name, queueURL, profile string) (r variantResult) {
	r = variantResult{Key: key, Name: name, QueueURL: redact(queueURL)}
	dir := filepath.Join(b.dir, key)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.Error = err.Error()
		return r
	}
	// What an earlier variant left is given back to the OS first, so
	// that the peak starts from this process's own, not from a heap the
	// runtime still holds.
	debug.FreeOSMemory()
	if err := resetPeakRSS(); err != nil {
		b.logf("%s: cannot reset the process's peak RSS (it may be an earlier variant's): %v", name, err)
	}
	b.logf("%s: starting the four services in this process on %s", name, redact(queueURL))
	started := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	sys, err := inprocess.Start(sctx, inprocess.Config{QueueURL: queueURL, Dir: dir, CatalogFile: b.cat})
	cancel()
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer func() {
		if err := sys.Stop(); err != nil && r.Error == "" {
			r.Error = fmt.Sprintf("stop: %v", err)
		}
	}()
	ph := phases{
		b: b, url: sys.OrderURL(), started: started,
		ready:  func(context.Context) error { return nil }, // Start returns once every service is ready
		exited: func() error { return nil },
		stats: func() map[string]procStats {
			st, err := readProcStats("self")
			if err != nil {
				return nil
			}
			return map[string]procStats{"all four + loadgen": st}
		},
	}
	if b.opts.CPUProfileDir != "" {
		ph.profile = profile
	}
	ph.run(ctx, &r)
	return r
}

// startCPUProfile starts runtime/pprof's CPU profile into path and, with
// block, a block profile (where goroutines waited: locks, channels, the
// database connection) written to path's .block.pprof sibling; the
// returned function stops both. The block profile counts from the
// process's first enabling, so only one run per process asks for it.
func startCPUProfile(path string, block bool) (func() error, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	if !block {
		return func() error {
			pprof.StopCPUProfile()
			return f.Close()
		}, nil
	}
	// One sample per 100µs spent blocked; reset by the stop function.
	runtime.SetBlockProfileRate(100_000)
	return func() error {
		pprof.StopCPUProfile()
		err := f.Close()
		blockPath := strings.TrimSuffix(path, ".pprof") + ".block.pprof"
		bf, cerr := os.Create(blockPath)
		if cerr == nil {
			cerr = pprof.Lookup("block").WriteTo(bf, 0)
			cerr = errors.Join(cerr, bf.Close())
		}
		runtime.SetBlockProfileRate(0)
		return errors.Join(err, cerr)
	}, nil
}
