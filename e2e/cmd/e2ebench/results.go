package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orderflow/orderflow/e2e/loadgen"
)

// results is everything one run measured; its JSON form is --json-out.
type results struct {
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Host       host      `json:"host"`
	Options    options   `json:"options"`
	// ServiceGOMAXPROCS is what the service processes (SQLite and
	// PostgreSQL variants) ran with: see serviceGOMAXPROCS.
	ServiceGOMAXPROCS string          `json:"service_gomaxprocs"`
	Variants          []variantResult `json:"variants"`
}

type host struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model,omitempty"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	LoadAvg   string `json:"load_average_at_start,omitempty"`
	// CPUPressure is /proc/pressure/cpu "some avg60" at the start and the
	// end: the share of time tasks waited for a CPU. Other work on the
	// machine shows here, and lowers every figure.
	CPUPressureStart string `json:"cpu_pressure_start,omitempty"`
	CPUPressureEnd   string `json:"cpu_pressure_end,omitempty"`
	// StealPercent is the share of the CPUs' time the hypervisor gave
	// to other guests during the run (/proc/stat); nil where unknown.
	StealPercent *float64 `json:"cpu_steal_percent,omitempty"`
	// CommitsPerSecond is this host's single-row SQLite commit rate,
	// measured before the variants (see probeCommits); 0 if it failed.
	CommitsPerSecond float64 `json:"sqlite_commits_per_second,omitempty"`
}

// cpuPressure returns "some avg60" of /proc/pressure/cpu, in percent.
func cpuPressure() string {
	b, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return ""
	}
	for _, f := range strings.Fields(strings.SplitN(string(b), "\n", 2)[0]) {
		if v, ok := strings.CutPrefix(f, "avg60="); ok {
			return v + "%"
		}
	}
	return ""
}

// speedLine says how fast this host commits and how much CPU it lost to
// other guests: the two things that made figures of VMs of one kind
// differ by more than code changes do.
func (h host) speedLine() string {
	var parts []string
	if h.CommitsPerSecond > 0 {
		parts = append(parts, fmt.Sprintf("SQLite single-row commits/s here %.0f, %.0f%% of the design machine's %d (its throughput targets assume that speed)",
			h.CommitsPerSecond, 100*h.CommitsPerSecond/designCommitsPerSecond, designCommitsPerSecond))
	}
	if h.StealPercent != nil {
		parts = append(parts, fmt.Sprintf("CPU time stolen by the hypervisor during the run %.1f%%", *h.StealPercent))
	}
	if len(parts) == 0 {
		return ""
	}
	return "Speed: " + strings.Join(parts, "; ") + ".\n"
}

func hostInfo() host {
	h := host{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				h.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	h.CPUPressureStart = cpuPressure()
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			h.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	return h
}

type variantResult struct {
	Key      string `json:"key"`
	Name     string `json:"name"`
	QueueURL string `json:"queue_url,omitempty"`
	Skipped  string `json:"skipped,omitempty"`
	Error    string `json:"error,omitempty"`
	// ReadySeconds: start → every service ready; FirstPlacedSeconds and
	// FirstOrderSeconds: start → the first order accepted, and COMPLETED.
	ReadySeconds       float64         `json:"ready_seconds,omitempty"`
	FirstPlacedSeconds float64         `json:"first_placed_seconds,omitempty"`
	FirstOrderSeconds  float64         `json:"first_order_seconds,omitempty"`
	Latency            *loadgen.Report `json:"latency_phase,omitempty"`
	Throughput         *loadgen.Report `json:"throughput_phase,omitempty"`
	Procs              []procResult    `json:"processes,omitempty"`
}

type procResult struct {
	Name       string  `json:"name"`
	IdleRSSMiB float64 `json:"idle_rss_mib"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	// CPU time during the throughput phase (waiting for the last orders
	// included).
	CPUSeconds    float64 `json:"cpu_seconds"`
	CPUPercent    float64 `json:"cpu_percent_of_one_core"`
	CPUMsPerOrder float64 `json:"cpu_ms_per_order"`
	// The share of the throughput phase in which the process held the
	// SQLite queue file's write lock, and waited for it; nil for other
	// queues.
	QueueLockHeldPercent *float64 `json:"queue_lock_held_percent,omitempty"`
	QueueLockWaitPercent *float64 `json:"queue_lock_wait_percent,omitempty"`
}

func sortProcs(ps []procResult) {
	order := func(name string) int {
		if i := slices.Index(services, name); i >= 0 {
			return i
		}
		return len(services)
	}
	slices.SortFunc(ps, func(a, b procResult) int { return order(a.Name) - order(b.Name) })
}

func (v variantResult) ok() bool { return v.Skipped == "" && v.Error == "" }

func (v variantResult) ordersPerSecond() float64 {
	if v.Throughput == nil {
		return 0
	}
	return v.Throughput.OrdersPerSecond
}

func (v variantResult) rss() (idle, peak float64) {
	for _, p := range v.Procs {
		idle += p.IdleRSSMiB
		peak += p.PeakRSSMiB
	}
	return idle, peak
}

// markdown renders the tables of the report.
func (r *results) markdown() string {
	var b strings.Builder
	var base *variantResult
	for i := range r.Variants {
		if r.Variants[i].Key == "memory" && r.Variants[i].Throughput != nil {
			base = &r.Variants[i]
		}
	}
	o := r.Options
	fmt.Fprintf(&b, "\n## e2ebench %s\n\n", r.StartedAt.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "Host: %d CPUs (%s), %s, %s; load average at start %s; CPU pressure (PSI some avg60) %s at start, %s at the end.\n",
		r.Host.CPUs, r.Host.CPUModel, r.Host.OS, r.Host.GoVersion, r.Host.LoadAvg, orNA(r.Host.CPUPressureStart), orNA(r.Host.CPUPressureEnd))
	b.WriteString(r.Host.speedLine())
	fmt.Fprintf(&b, "Throughput phase: %d clients, at most %d sagas open, %s. Latency phase: %.0f orders/s for %s.\n",
		o.Concurrency, o.MaxPending, o.Duration, o.LatencyRate, o.LatencyDuration)
	fmt.Fprintf(&b, "Service processes: GOMAXPROCS %s", r.ServiceGOMAXPROCS)
	if len(o.Env) > 0 {
		fmt.Fprintf(&b, "; --env %s", strings.Join(o.Env, " "))
	}
	b.WriteString(".\n\n")

	fmt.Fprintf(&b, "| variant | orders/s | × GoChannel | p50 @%.0f/s | p99 @%.0f/s | p50 × GoChannel | p99 × GoChannel | ready | first order | RSS idle | RSS peak |\n", o.LatencyRate, o.LatencyRate)
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, v := range r.Variants {
		if !v.ok() && v.Throughput == nil && v.Latency == nil {
			why := v.Skipped
			if why == "" {
				why = "error: " + firstLine(v.Error)
			}
			fmt.Fprintf(&b, "| %s | %s | | | | | | | | | |\n", v.Name, why)
			continue
		}
		thr, ratio := "–", "–"
		if v.Throughput != nil {
			thr = fmt.Sprintf("%.0f", v.ordersPerSecond())
			if base != nil && base.ordersPerSecond() > 0 {
				ratio = fmt.Sprintf("%.2f", v.ordersPerSecond()/base.ordersPerSecond())
			}
		}
		p50, p99, r50, r99 := "–", "–", "–", "–"
		if v.Latency != nil && v.Latency.Latency.Count > 0 {
			p50, p99 = ms(v.Latency.Latency.P50), ms(v.Latency.Latency.P99)
			if base != nil && base.Latency != nil && base.Latency.Latency.P50 > 0 {
				r50 = fmt.Sprintf("%.1f", float64(v.Latency.Latency.P50)/float64(base.Latency.Latency.P50))
				r99 = fmt.Sprintf("%.1f", float64(v.Latency.Latency.P99)/float64(max(base.Latency.Latency.P99, 1)))
			}
		}
		idle, peak := v.rss()
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %.2f s | %.2f s | %.0f MiB | %.0f MiB |\n",
			v.Name, thr, ratio, p50, p99, r50, r99, v.ReadySeconds, v.FirstOrderSeconds, idle, peak)
	}

	b.WriteString("\nPer process (CPU during the throughput phase, until its last order ended):\n\n")
	// The queue lock columns: the share of the phase in which the process
	// held the SQLite queue file's one write lock, and waited for it.
	// Summed over the processes, held near 100 % means that lock limits
	// the run.
	b.WriteString("| variant | process | RSS idle | RSS peak (VmHWM) | CPU s | % of a core | CPU ms / order | queue lock held | queue lock waited |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, v := range r.Variants {
		for _, p := range v.Procs {
			fmt.Fprintf(&b, "| %s | %s | %.1f MiB | %.1f MiB | %.1f | %.0f%% | %.2f | %s | %s |\n",
				v.Name, p.Name, p.IdleRSSMiB, p.PeakRSSMiB, p.CPUSeconds, p.CPUPercent, p.CPUMsPerOrder,
				percent(p.QueueLockHeldPercent), percent(p.QueueLockWaitPercent))
		}
	}

	b.WriteString("\nPhases:\n\n")
	// "refused": answers 503 + Retry-After at the order service's
	// open-order limit, each sent again by loadgen after the wait; "not
	// placed": requests that failed after loadgen's retries (or were still
	// refused when the phase ended).
	b.WriteString("| variant | phase | placed | refused | not placed | completed | cancelled | rejected | timed out | placed/s | orders/s | p50 | p90 | p99 | max |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, v := range r.Variants {
		for _, ph := range []struct {
			name string
			rep  *loadgen.Report
		}{{"latency", v.Latency}, {"throughput", v.Throughput}} {
			if ph.rep == nil {
				continue
			}
			x := ph.rep
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d | %d | %d | %.0f | %.0f | %s | %s | %s | %s |\n",
				v.Name, ph.name, x.Placed, x.PlaceRefused, x.PlaceErrors, x.Completed, x.Cancelled, x.Rejected, x.TimedOutWaiting, x.PlacedPerSecond, x.OrdersPerSecond,
				ms(x.Latency.P50), ms(x.Latency.P90), ms(x.Latency.P99), ms(x.Latency.Max))
		}
	}

	for _, v := range r.Variants {
		if v.Key != "sqlite" || v.Throughput == nil {
			continue
		}
		b.WriteString(targets(v, o.LatencyRate))
	}
	for _, v := range r.Variants {
		if v.Error != "" {
			fmt.Fprintf(&b, "\n%s failed: %s\n", v.Name, v.Error)
		}
	}
	return b.String()
}

// designLatencyRate is the rate, in orders/s, at which the design's
// latency targets are defined (docs/design.md §9: p50 ≤ 20 ms and
// p99 ≤ 200 ms place→terminal at 200 orders/s).
const designLatencyRate = 200

// targets renders the Targets section of the report for v, the SQLite
// variant, whose latency phase ran at latencyRate orders/s. Each figure is
// judged against its target in docs/design.md §9, except the latency
// percentiles of a run at another rate than designLatencyRate: those are
// labelled with the run's rate and said not to be comparable, with no
// verdict, since the targets hold at that rate only.
//
// A figure is judged only when it was measured whole: a variant that
// failed gets no verdict; a figure not measured (0: no order of the phase
// ended, no idle sample) is said to be missing; and a phase in which
// orders were not placed or did not end within the wait is MISSED, since
// its orders/s and percentiles count only the orders that did end (the
// slowest are the ones left out).
func targets(v variantResult, latencyRate float64) string {
	var b strings.Builder
	b.WriteString("\nTargets (docs/design.md §9, SQLite across four processes):\n\n")
	if v.Error != "" {
		b.WriteString("- not judged: the variant failed (below); its figures above may be partial\n")
		return b.String()
	}
	switch miss := incomplete(v.Throughput); {
	case v.Throughput == nil || v.Throughput.Terminal() == 0:
		b.WriteString("- sustained orders/s: not measured (no order of the throughput phase ended)\n")
	case miss != "":
		fmt.Fprintf(&b, "- sustained orders/s: %.0f (target ≥ 1000) — MISSED: %s\n", v.ordersPerSecond(), miss)
	default:
		b.WriteString(target("sustained orders/s", v.ordersPerSecond(), 1000, true, "%.0f"))
	}
	if v.Latency != nil {
		miss := incomplete(v.Latency)
		for _, p := range []struct {
			name string
			got  time.Duration
			want float64
		}{{"p50", v.Latency.Latency.P50, 20}, {"p99", v.Latency.Latency.P99, 200}} {
			switch {
			case v.Latency.Latency.Count == 0:
				fmt.Fprintf(&b, "- %s place→terminal: not measured (no order of the latency phase ended)\n", p.name)
			case latencyRate != designLatencyRate && miss != "":
				line := latencyTarget(p.name, msf(p.got), p.want, latencyRate)
				fmt.Fprintf(&b, "%s; of the orders that ended: %s)\n", strings.TrimSuffix(line, ")\n"), miss)
			case miss != "":
				fmt.Fprintf(&b, "- %s place→terminal @%s/s (ms): %.1f of the orders that ended (target ≤ %.1f) — MISSED: %s\n",
					p.name, strconv.FormatFloat(latencyRate, 'f', -1, 64), msf(p.got), p.want, miss)
			default:
				b.WriteString(latencyTarget(p.name, msf(p.got), p.want, latencyRate))
			}
		}
	}
	if idle, _ := v.rss(); idle > 0 {
		b.WriteString(target("RSS of the four, idle (MiB)", idle, 150, false, "%.0f"))
	} else {
		b.WriteString("- RSS of the four, idle (MiB): not measured\n")
	}
	if v.FirstOrderSeconds > 0 {
		b.WriteString(target("start → first order completed (s)", v.FirstOrderSeconds, 3, false, "%.2f"))
	} else {
		b.WriteString("- start → first order completed (s): not measured\n")
	}
	return b.String()
}

// incomplete says what a phase left out of its figures: orders it could
// not place, orders that did not end within the wait; "" when none (or
// when the phase did not run).
func incomplete(r *loadgen.Report) string {
	if r == nil {
		return ""
	}
	var parts []string
	if r.PlaceErrors > 0 {
		parts = append(parts, fmt.Sprintf("%d orders not placed", r.PlaceErrors))
	}
	if r.TimedOutWaiting > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d placed did not end within the wait", r.TimedOutWaiting, r.Placed))
	}
	return strings.Join(parts, ", ")
}

// latencyTarget is the line of percentile (p50, p99) place→terminal, got
// ms at rate orders/s, against the design's bound of want ms: judged as
// target does when rate is designLatencyRate, else only shown beside the
// target, which is said to be defined at designLatencyRate.
func latencyTarget(percentile string, got, want, rate float64) string {
	name := fmt.Sprintf("%s place→terminal @%s/s (ms)", percentile, strconv.FormatFloat(rate, 'f', -1, 64))
	if rate == designLatencyRate {
		return target(name, got, want, false, "%.1f")
	}
	return fmt.Sprintf("- %s: %.1f (target ≤ %.1f is defined at %d/s; not comparable with this run at %s/s)\n",
		name, got, want, designLatencyRate, strconv.FormatFloat(rate, 'f', -1, 64))
}

func target(name string, got, want float64, atLeast bool, format string) string {
	met := got <= want
	if atLeast {
		met = got >= want
	}
	verdict := "met"
	switch {
	case met:
	case atLeast:
		verdict = fmt.Sprintf("MISSED: %.0f%% of the target", 100*got/want)
	default:
		verdict = fmt.Sprintf("MISSED: %.1f× the target", got/want)
	}
	bound := "≤"
	if atLeast {
		bound = "≥"
	}
	return fmt.Sprintf("- %s: "+format+" (target %s "+format+") — %s\n", name, got, bound, want, verdict)
}

func ms(d time.Duration) string {
	v := msf(d)
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f ms", v)
	case v < 10000:
		return fmt.Sprintf("%.0f ms", v)
	}
	return fmt.Sprintf("%.1f s", v/1000)
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func orNA(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// percent formats an optional share of a phase.
func percent(p *float64) string {
	if p == nil {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", *p)
}
