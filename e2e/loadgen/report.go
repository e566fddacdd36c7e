package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a run. Its JSON form is what --json-out writes.
type Report struct {
	URL         string    `json:"url"`
	Mode        string    `json:"mode"` // "rate" or "concurrency"
	Rate        float64   `json:"target_rate,omitempty"`
	Concurrency int       `json:"concurrency"`
	MaxPending  int       `json:"max_pending,omitempty"`
	StartedAt   time.Time `json:"started_at"`
	// PlaceSeconds is the time spent placing orders, PlacedPerSecond the
	// rate achieved.
	PlaceSeconds    float64 `json:"place_seconds"`
	PlacedPerSecond float64 `json:"placed_per_second"`
	// ElapsedSeconds is the whole run, waiting included.
	ElapsedSeconds float64 `json:"elapsed_seconds"`

	// PlaceErrors counts the orders given up on; PlaceRetries the requests
	// sent again after a failure other than a refusal.
	Placed       int `json:"placed"`
	PlaceErrors  int `json:"place_errors"`
	PlaceRetries int `json:"place_retries"`
	// PlaceRefused counts the refusals: answers 503 or 429 with a
	// Retry-After (the order service's admission control), sent again
	// after the wait while placing lasts. They are the system pushing
	// back, not errors; an order still refused when placing ended is also
	// a place error.
	PlaceRefused    int            `json:"place_refused"`
	ErrorKinds      map[string]int `json:"error_kinds,omitempty"`
	LastError       string         `json:"last_error,omitempty"`
	Completed       int            `json:"completed"`
	Cancelled       int            `json:"cancelled"`
	Rejected        int            `json:"rejected"`
	TimedOutWaiting int            `json:"timed_out_waiting"`
	Interrupted     bool           `json:"interrupted,omitempty"`

	// OrdersPerSecond is the end-to-end throughput: terminal orders per
	// second from the first placed_at to the last finished_at (server
	// clock).
	OrdersPerSecond float64 `json:"orders_per_second"`
	// Latency is placed_at → finished_at of every terminal order;
	// PlaceLatency the round trip of POST /orders.
	Latency      Latency `json:"latency"`
	PlaceLatency Latency `json:"place_latency"`
	// StatusReads counts the requests spent finding terminal orders.
	StatusReads int `json:"status_reads"`
	// OrdersRead counts the orders those requests returned: the load the
	// looking put on the order service.
	OrdersRead int `json:"orders_read"`
}

// Terminal is the number of orders that ended.
func (r Report) Terminal() int { return r.Completed + r.Cancelled + r.Rejected }

func (r *runner) report(placeEnd time.Time, interrupted bool) Report {
	now := time.Now()
	t := r.tracker
	t.mu.Lock()
	results := slices.Clone(t.results)
	pending := len(t.pending)
	reads, ordersRead := t.reads, t.ordersRead
	t.mu.Unlock()
	r.mu.Lock()
	placeLat := slices.Clone(r.placeLat)
	kinds := maps.Clone(r.errKinds)
	lastErr := r.lastError
	r.mu.Unlock()

	rep := Report{
		URL: r.cfg.URL, Mode: r.cfg.Mode(), Rate: r.cfg.Rate, Concurrency: r.cfg.Concurrency, MaxPending: r.cfg.MaxPending,
		StartedAt:       r.started.UTC(),
		PlaceSeconds:    round3(placeEnd.Sub(r.started).Seconds()),
		ElapsedSeconds:  round3(now.Sub(r.started).Seconds()),
		Placed:          int(r.placed.Load()),
		PlaceErrors:     int(r.failed.Load()),
		PlaceRetries:    int(r.retried.Load()),
		PlaceRefused:    int(r.refused.Load()),
		ErrorKinds:      kinds,
		LastError:       lastErr,
		TimedOutWaiting: pending,
		Interrupted:     interrupted,
		PlaceLatency:    Summarize(placeLat),
		StatusReads:     reads,
		OrdersRead:      ordersRead,
	}
	if len(kinds) == 0 {
		rep.ErrorKinds = nil
	}
	if rep.PlaceSeconds > 0 {
		rep.PlacedPerSecond = round3(float64(rep.Placed) / rep.PlaceSeconds)
	}
	lat := make([]time.Duration, 0, len(results))
	var first, last time.Time
	for _, res := range results {
		switch res.Status {
		case StatusCompleted:
			rep.Completed++
		case StatusCancelled:
			rep.Cancelled++
		case StatusRejected:
			rep.Rejected++
		}
		lat = append(lat, max(res.Finished.Sub(res.Placed), 0))
		if first.IsZero() || res.Placed.Before(first) {
			first = res.Placed
		}
		if res.Finished.After(last) {
			last = res.Finished
		}
	}
	rep.Latency = Summarize(lat)
	if span := last.Sub(first).Seconds(); len(results) > 1 && span > 0 {
		rep.OrdersPerSecond = round3(float64(len(results)) / span)
	}
	return rep
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// WriteText prints the report for a person.
func (r Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	load := fmt.Sprintf("%d concurrent clients", r.Concurrency)
	if r.Mode == "rate" {
		load = fmt.Sprintf("target %.0f orders/s (at most %d in flight)", r.Rate, r.Concurrency)
	}
	if r.MaxPending > 0 {
		load += fmt.Sprintf(", at most %d orders pending", r.MaxPending)
	}
	fmt.Fprintf(tw, "load\t%s against %s\n", load, r.URL)
	fmt.Fprintf(tw, "placed\t%d in %.1fs (%.1f/s)\n", r.Placed, r.PlaceSeconds, r.PlacedPerSecond)
	errLine := fmt.Sprintf("%d", r.PlaceErrors)
	if len(r.ErrorKinds) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(r.ErrorKinds)) {
			parts = append(parts, fmt.Sprintf("%s: %d", k, r.ErrorKinds[k]))
		}
		errLine += " (" + strings.Join(parts, ", ") + "; last: " + r.LastError + ")"
	}
	fmt.Fprintf(tw, "place errors\t%s, %d retries\n", errLine, r.PlaceRetries)
	fmt.Fprintf(tw, "refused\t%d (503/429 with Retry-After: the system pushed back; sent again after the wait)\n", r.PlaceRefused)
	fmt.Fprintf(tw, "completed\t%d\n", r.Completed)
	fmt.Fprintf(tw, "cancelled\t%d\n", r.Cancelled)
	fmt.Fprintf(tw, "rejected\t%d\n", r.Rejected)
	timedOut := fmt.Sprintf("%d", r.TimedOutWaiting)
	if r.Interrupted {
		timedOut += " (interrupted)"
	}
	fmt.Fprintf(tw, "timed out waiting\t%s\n", timedOut)
	fmt.Fprintf(tw, "orders/s\t%.1f (terminal orders, first placed → last finished)\n", r.OrdersPerSecond)
	fmt.Fprintf(tw, "place → terminal\t%s\n", r.Latency.text())
	fmt.Fprintf(tw, "POST /orders\t%s\n", r.PlaceLatency.text())
	fmt.Fprintf(tw, "elapsed\t%.1fs, %d status reads (%d orders)\n", r.ElapsedSeconds, r.StatusReads, r.OrdersRead)
	return tw.Flush()
}

func (l Latency) text() string {
	if l.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (n=%d)",
		fmtMS(l.P50), fmtMS(l.P90), fmtMS(l.P99), fmtMS(l.Max), l.Count)
}

func fmtMS(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 10:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.1f ms", ms)
	}
	return fmt.Sprintf("%.2f s", ms/1000)
}

// WriteJSONFile writes the report as indented JSON to path.
func (r Report) WriteJSONFile(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// ---- progress -------------------------------------------------------------------

// progress reports until stop is closed: a line rewritten every 250ms on a
// terminal, a plain line every ProgressEvery otherwise.
func (r *runner) progress(stop <-chan struct{}) {
	w := r.cfg.Progress
	if w == nil {
		<-stop
		return
	}
	every := r.cfg.ProgressEvery
	if r.cfg.ProgressTTY {
		every = 250 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			if r.cfg.ProgressTTY {
				fmt.Fprintf(w, "\r\033[2K%s\n", fitLine(r.progressLine(true), terminalWidth(w)))
			}
			return
		case <-t.C:
			if r.cfg.ProgressTTY {
				// Cut to the terminal's width: a line that wraps leaves
				// a stale row behind each time "\r\033[2K" rewrites it.
				fmt.Fprintf(w, "\r\033[2K%s", fitLine(r.progressLine(true), terminalWidth(w)))
			} else {
				fmt.Fprintln(w, r.progressLine(false))
			}
		}
	}
}

// fitLine cuts line to fit a terminal width columns wide, one column
// kept free for the cursor; width 0 (unknown) leaves it whole. The line is
// ASCII but for the bar's characters, one column each.
func fitLine(line string, width int) string {
	if width <= 1 {
		return line
	}
	runes := []rune(line)
	if len(runes) < width {
		return line
	}
	return string(runes[:width-1])
}

func (r *runner) progressLine(bar bool) string {
	elapsed := time.Since(r.started)
	placed := r.placed.Load()
	pending, by := r.tracker.counts()
	phase := "waiting"
	if r.placing.Load() {
		phase = "placing"
	}
	var b strings.Builder
	if bar {
		frac := 0.0
		if r.cfg.Duration > 0 {
			frac = elapsed.Seconds() / r.cfg.Duration.Seconds()
		}
		if r.cfg.Count > 0 {
			frac = max(frac, float64(placed)/float64(r.cfg.Count))
		}
		if !r.placing.Load() {
			frac = 1
		}
		frac = min(frac, 1)
		const width = 20
		n := int(frac * width)
		fmt.Fprintf(&b, "[%s%s] %3.0f%% ", strings.Repeat("#", n), strings.Repeat("-", width-n), frac*100)
	}
	rate := ""
	if s := elapsed.Seconds(); s > 0 && r.placing.Load() {
		rate = fmt.Sprintf(" (%.0f/s)", float64(placed)/s)
	}
	fmt.Fprintf(&b, "%s %5.1fs  placed %d%s  completed %d  cancelled %d  rejected %d  pending %d  errors %d",
		phase, elapsed.Seconds(), placed, rate, by[StatusCompleted], by[StatusCancelled], by[StatusRejected], pending, r.failed.Load())
	if n := r.refused.Load(); n > 0 {
		fmt.Fprintf(&b, "  refused %d", n) // only then: the line is long already
	}
	return b.String()
}
