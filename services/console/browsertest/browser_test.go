// Package browsertest drives the console in headless Chromium (chromedp)
// against the real system: the four services and the console, each built
// with go build and started as its own process on a SQLite queue in a
// temporary directory.
//
// Chromium is found on PATH (chromium, chromium-browser, google-chrome) or
// at $CHROMIUM_PATH. Without it the test is skipped, except in CI (CI set
// to anything but "", "false" or "0": CI runners export CI=true or CI=1),
// where it fails. On failure, a screenshot and the HTML of the page are
// saved to $CONSOLE_TEST_ARTIFACTS or a temporary directory named in the
// log. With CONSOLE_SCREENSHOTS_DIR set, the test also saves one screenshot
// of each page there (docs/screenshots is kept that way).
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

func chromiumPath() string {
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser is one headless Chromium tab on the console.
type browser struct {
	t         *testing.T
	ctx       context.Context
	base      string
	artifacts string // created on the first failure
	shots     string // docs screenshots; "" to skip
	step      string
}

func newBrowser(t *testing.T, chrome, base string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.Headless,
		chromedp.NoSandbox, // the test may run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		// Chromium's own scratch directories (org.chromium.Chromium.*)
		// go to TMPDIR: under the test's, they are removed with it.
		chromedp.Env("TMPDIR="+t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithErrorf(func(string, ...any) {}))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	b := &browser{t: t, ctx: ctx, base: base, shots: os.Getenv("CONSOLE_SCREENSHOTS_DIR")}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatalf("start Chromium (%s): %v", chrome, err)
	}
	return b
}

// fail saves a screenshot and the page's HTML, then fails the test.
func (b *browser) fail(format string, args ...any) {
	b.t.Helper()
	msg := fmt.Sprintf(format, args...)
	if b.artifacts == "" {
		dir := os.Getenv("CONSOLE_TEST_ARTIFACTS")
		if dir == "" {
			dir, _ = os.MkdirTemp("", "console-browser-artifacts-")
		} else {
			_ = os.MkdirAll(dir, 0o755)
		}
		b.artifacts = dir
	}
	name := regexp.MustCompile(`[^a-zA-Z0-9_-]+`).ReplaceAllString(b.t.Name()+"-"+b.step, "_")
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		_ = os.WriteFile(filepath.Join(b.artifacts, name+".png"), png, 0o644)
	}
	if html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html"))); err == nil {
		_ = os.WriteFile(filepath.Join(b.artifacts, name+".html"), []byte(html), 0o644)
	}
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	b.t.Fatalf("step %q at %s: %s\n(screenshot and HTML saved in %s)", b.step, loc, msg, b.artifacts)
}

// do runs steps, failing the test on an error.
func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fail("%v", err)
	}
}

// open navigates to a console page.
func (b *browser) open(path string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base+path), chromedp.WaitReady(chromedp.CSS("main")))
}

// eval evaluates a JavaScript expression and returns its value as text.
func (b *browser) eval(js string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[any](js))
	if err != nil {
		b.fail("evaluate %s: %v", js, err)
	}
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// wait polls a JavaScript expression until it is truthy and returns its
// value as text.
func (b *browser) wait(what, js string, within time.Duration) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, within+5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Poll[any](js,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(within)))
	if err != nil {
		b.fail("waiting %s for %s: %v", within, what, err)
	}
	return fmt.Sprint(v)
}

// awaitPolls waits until the live region with id has polled n times from
// now, each poll's answer past the console's decision to swap it in or
// hold the region (its htmx:beforeSwap handler, which runs before the one
// added here). Other regions of the page poll too; only id's count.
func (b *browser) awaitPolls(id string, n int, what string) {
	b.t.Helper()
	b.eval(`if (!window.__polls) {
		window.__polls = {};
		document.addEventListener("htmx:beforeSwap", function (evt) {
			var elt = evt.detail.elt;
			if (elt && elt.classList && elt.classList.contains("live")) {
				window.__polls[elt.id] = (window.__polls[elt.id] || 0) + 1;
			}
		});
	}
	window.__polls[` + strconv.Quote(id) + `] = 0; 1`)
	b.wait(fmt.Sprintf("%d polls of #%s %s", n, id, what), fmt.Sprintf(`window.__polls[%q] >= %d`, id, n), 15*time.Second)
}

// click clicks the element that selector selects.
func (b *browser) click(selector string) {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.CSS(selector)), chromedp.Click(chromedp.CSS(selector)))
}

// docShot saves a screenshot of the page for the docs.
func (b *browser) docShot(name string) {
	b.t.Helper()
	if b.shots == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.fail("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("saved %s.png", name)
}

// placeOrder fills the form of the Orders page and submits it; it returns
// the new order's id, read from the confirmation. The page is not
// reloaded: a marker set before submitting must survive.
func (b *browser) placeOrder(customer string, qty map[string]int) string {
	b.t.Helper()
	b.open("/orders")
	b.eval(`window.__consoleMarker = "no reload"`)
	b.do(chromedp.WaitVisible(chromedp.CSS("#customer_id")), chromedp.SendKeys(chromedp.CSS("#customer_id"), customer))
	for sku, n := range qty {
		b.do(chromedp.SetValue(chromedp.CSS("#qty-"+sku), strconv.Itoa(n)))
	}
	b.click("#place-order-submit")
	return b.wait("the placed order's id", `document.querySelector('#flash a[data-order-id]')?.dataset.orderId`, 15*time.Second)
}

// terminalInList waits for the order's row to show a terminal status and
// returns it.
func (b *browser) terminalInList(id string) string {
	b.t.Helper()
	return b.wait("order "+id+" to end in the live list", fmt.Sprintf(
		`(s => ["COMPLETED", "CANCELLED", "REJECTED"].includes(s) && s)(document.querySelector('tr[data-order-id="%s"]')?.dataset.status)`, id),
		45*time.Second)
}

// terminalOnPage waits for the order page to show a terminal status.
func (b *browser) terminalOnPage() string {
	b.t.Helper()
	return b.wait("the order to end on its page",
		`(s => ["COMPLETED", "CANCELLED", "REJECTED"].includes(s) && s)(document.querySelector('#order-status')?.dataset.status)`,
		45*time.Second)
}

// setFault clicks a preset of a flag on the Faults page and waits for the
// page to show the value.
func (b *browser) setFault(service, flag, preset, want string) {
	b.t.Helper()
	b.open("/faults")
	row := fmt.Sprintf("#flag-%s-%s", service, flag)
	b.click(row + fmt.Sprintf(` button[data-preset="%s"]`, preset))
	b.waitFlag(service, flag, want)
}

// resetFault clicks "Reset to default" of a flag.
func (b *browser) resetFault(service, flag, want string) {
	b.t.Helper()
	b.open("/faults")
	b.click(fmt.Sprintf("#flag-%s-%s .reset", service, flag))
	b.waitFlag(service, flag, want)
}

func (b *browser) waitFlag(service, flag, want string) {
	b.t.Helper()
	b.wait(fmt.Sprintf("%s %s to be %q", service, flag, want), fmt.Sprintf(
		`document.querySelector('#flag-%s-%s')?.dataset.value === %q`, service, flag, want), 15*time.Second)
}

// inCI reports whether the CI environment variable's value ci says the test
// runs in CI: any value but "", "false" or "0" (any case).
func inCI(ci string) bool {
	switch strings.ToLower(strings.TrimSpace(ci)) {
	case "", "false", "0":
		return false
	}
	return true
}

func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the browser test builds and runs the whole system")
	}
	chrome := chromiumPath()
	if chrome == "" {
		msg := "Chromium not found: install it (apt-get install -y chromium) or set CHROMIUM_PATH"
		if ci := os.Getenv("CI"); inCI(ci) {
			t.Fatalf("%s (CI=%s: the browser test must run)", msg, ci)
		}
		t.Skip(msg)
	}
	start := time.Now()
	sys := startSystem(t)
	t.Logf("system up in %s: %s", time.Since(start).Round(time.Millisecond), sys)
	b := newBrowser(t, chrome, sys.ConsoleURL)

	var completed, cancelled string

	b.step = "place an order and watch it complete without reloading"
	completed = b.placeOrder("browser-1", map[string]int{"SKU-1": 2, "SKU-3": 1})
	if got := b.terminalInList(completed); got != "COMPLETED" {
		b.fail("order %s ended %s, want COMPLETED", completed, got)
	}
	if got := b.eval(`window.__consoleMarker`); got != "no reload" {
		b.fail("the page was reloaded (marker %q)", got)
	}
	b.open("/orders/" + completed)
	if got := b.terminalOnPage(); got != "COMPLETED" {
		b.fail("order page shows %s, want COMPLETED", got)
	}
	b.wait("the completion on the timeline", `document.querySelector('.timeline li.kind-completed[data-type="OrderCompleted"]') !== null`, 5*time.Second)
	if href := b.eval(`document.querySelector('#trace-link')?.getAttribute('href')`); !strings.HasPrefix(href, sys.JaegerURL+"/trace/") {
		b.fail("trace link %q, want %s/trace/{trace_id}", href, sys.JaegerURL)
	}
	if b.eval(`document.querySelector('#cancel-order') === null`) != "true" {
		b.fail("a completed order offers a cancel button")
	}
	b.wait("the charge and the booking at the providers", `document.querySelector('#provider-gateway')?.dataset.outcome === "ACCEPTED" &&
		document.querySelector('#provider-carrier')?.dataset.outcome === "ACCEPTED"`, 5*time.Second)
	if got := b.eval(`document.querySelector('#provider-gateway')?.textContent`); !strings.Contains(got, "charged") || !strings.Contains(got, " as pay_") {
		b.fail("gateway record %q, want a charge as pay_…", got)
	}

	b.step = "payment declines every charge: the order is cancelled and its stock released"
	b.setFault("payment", "payment_decline_rate", "1", "1")
	b.wait("the fault banner", `document.querySelector('#fault-banner [data-active-flag="payment/payment_decline_rate"]') !== null`, 10*time.Second)
	b.docShot("faults")
	cancelled = b.placeOrder("browser-2", map[string]int{"SKU-2": 1})
	if got := b.terminalInList(cancelled); got != "CANCELLED" {
		b.fail("order %s ended %s, want CANCELLED", cancelled, got)
	}
	b.open("/orders/" + cancelled)
	b.wait("the declined payment on the timeline", `document.querySelector('.timeline li.kind-failure[data-type="PaymentDeclined"]') !== null`, 10*time.Second)
	b.wait("the release-stock compensation on the timeline", `document.querySelector('.timeline li.kind-compensation[data-type="StockReleased"]') !== null`, 10*time.Second)
	if got := b.eval(`document.querySelector('.timeline li[data-type="CompensationRequested"]')?.textContent`); !strings.Contains(got, "release stock") {
		b.fail("compensation entry %q does not name release stock", got)
	}
	b.wait("the declined charge at the gateway", `document.querySelector('#provider-gateway')?.dataset.outcome === "REFUSED"`, 5*time.Second)
	b.docShot("order")
	b.resetFault("payment", "payment_decline_rate", "0")
	b.wait("the banner to clear", `document.querySelector('#fault-banner [data-active-flag]') === null`, 10*time.Second)

	b.step = "cancel an order while payment is slow"
	b.open("/faults")
	b.do(chromedp.SetValue(chromedp.CSS("#value-payment-payment_latency"), "3s"))
	b.click(`#flag-payment-payment_latency button[type="submit"]:not(.preset)`)
	b.waitFlag("payment", "payment_latency", "3s")
	slow := b.placeOrder("browser-3", map[string]int{"SKU-4": 1})
	b.click(`#flash a[data-order-id]`) // to the order's page
	b.click("#cancel-order")
	if got := b.terminalOnPage(); got != "CANCELLED" {
		b.fail("cancelled order %s ended %s, want CANCELLED", slow, got)
	}
	b.wait("the cancellation on the timeline", `document.querySelector('.timeline li.kind-cancel[data-type="CancellationRequested"]') !== null`, 5*time.Second)
	b.resetFault("payment", "payment_latency", "0s")

	b.step = "a poison message is dead-lettered, comes back when replayed, and is purged"
	b.setFault("payment", "poison", "true", "false") // one-shot: it publishes, then clears itself
	b.open("/queue")
	poisonID := b.wait("the poison message in the dead-letter queue",
		`document.querySelector('#dlq tr[data-topic="payment.events"]')?.dataset.deadLetterId`, 30*time.Second)
	row := fmt.Sprintf(`#dlq tr[data-dead-letter-id="%s"]`, poisonID)
	b.click(row + " details.payload summary")
	if got := b.eval(`document.querySelector('` + row + ` details.payload pre')?.textContent`); !strings.Contains(got, "poison") {
		b.fail("payload %q, want the poison text", got)
	}
	b.docShot("queue")
	deadAt := b.eval(`document.querySelector('` + row + `').dataset.deadAt`)
	b.click(row + " button.replay")
	// Dead-lettered again: a new entry, or, when the consumer failed before
	// the replay removed the old one, the old entry with a later dead-at.
	b.wait("the replayed poison message to be dead-lettered again", fmt.Sprintf(
		`[...document.querySelectorAll('#dlq tr[data-topic="payment.events"]')].some(r => r.dataset.deadLetterId !== "%s" || r.dataset.deadAt !== "%s")`, poisonID, deadAt), 30*time.Second)
	b.click("#purge-confirm")
	b.click("#purge")
	b.wait("an empty dead-letter queue after the purge", `document.querySelector('#dlq-empty') !== null`, 10*time.Second)

	b.step = "a charge dead-lettered by a transient failure is replayed once the fault is cleared"
	b.setFault("payment", "payment_transient_error_rate", "1", "1")
	stuck := b.placeOrder("browser-4", map[string]int{"SKU-1": 1})
	b.open("/queue")
	stuckID := b.wait("the failed charge in the dead-letter queue",
		`document.querySelector('#dlq tr[data-topic="payment.commands"]')?.dataset.deadLetterId`, 45*time.Second)
	b.resetFault("payment", "payment_transient_error_rate", "0")
	b.open("/queue")
	b.click(fmt.Sprintf(`#dlq tr[data-dead-letter-id="%s"] button.replay`, stuckID))
	b.wait("an empty dead-letter queue after the replay", `document.querySelector('#dlq-empty') !== null`, 15*time.Second)
	b.open("/orders/" + stuck)
	if got := b.terminalOnPage(); got != "COMPLETED" {
		b.fail("replayed order %s ended %s, want COMPLETED", stuck, got)
	}

	b.step = "a poll does not replace a form in use"
	b.open("/stock")
	sku2 := b.wait("SKU-2's stock", `document.querySelector('tr[data-sku="SKU-2"] td[data-available]')?.dataset.available`, 10*time.Second)
	b.do(chromedp.SetValue(chromedp.CSS("#restock-SKU-1"), "42"))
	b.eval(`window.__restocked = 0; fetch("/stock/SKU-2/restock", {method: "POST", body: new URLSearchParams({quantity: "1"})})
		.then(r => { window.__restocked = r.status; }); 1`)
	b.wait("a restock of SKU-2 from elsewhere", `window.__restocked`, 5*time.Second)
	b.awaitPolls("stock", 3, "each with news")
	if got := b.eval(`document.querySelector('#restock-SKU-1').value`); got != "42" {
		b.fail("the typed quantity is %q after the stock changed, want 42 kept", got)
	}
	if got := b.eval(`document.querySelector('tr[data-sku="SKU-2"] td[data-available]').dataset.available`); got != sku2 {
		b.fail("SKU-2 shows %s while a quantity is typed, want %s (the region held)", got, sku2)
	}
	b.do(chromedp.SetValue(chromedp.CSS("#restock-SKU-1"), ""))
	b.wait("the stock to update once the form is left alone", fmt.Sprintf(
		`document.querySelector('tr[data-sku="SKU-2"] td[data-available]')?.dataset.available !== %q`, sku2), 5*time.Second)
	b.open("/faults")
	b.do(chromedp.SetValue(chromedp.CSS("#value-payment-payment_decline_rate"), "2"))
	b.click(`#flag-payment-payment_decline_rate button[type="submit"]:not(.preset)`)
	b.wait("the refused rate's message", `document.querySelector('#flag-payment-payment_decline_rate .field-error') !== null`, 5*time.Second)
	b.awaitPolls("faults-payment", 3, "with the refused rate's message")
	if b.eval(`document.querySelector('#flag-payment-payment_decline_rate .field-error') !== null`) != "true" {
		b.fail("the refused rate's message is gone after a poll, want it kept next to the field")
	}
	b.click(`#flag-payment-payment_decline_rate button.preset[data-preset="0"]`)
	b.waitFlag("payment", "payment_decline_rate", "0")

	b.step = "restock a SKU"
	b.open("/stock")
	before, err := strconv.Atoi(b.wait("SKU-5's stock", `document.querySelector('tr[data-sku="SKU-5"] td[data-available]')?.dataset.available`, 10*time.Second))
	if err != nil {
		b.fail("available stock: %v", err)
	}
	b.do(chromedp.SetValue(chromedp.CSS("#restock-SKU-5"), "7"))
	b.click(`tr[data-sku="SKU-5"] .restock-form button`)
	b.wait("the restocked quantity", fmt.Sprintf(
		`document.querySelector('tr[data-sku="SKU-5"] td[data-available]')?.dataset.available === "%d"`, before+7), 10*time.Second)
	b.docShot("stock")

	b.step = "orders list"
	b.open("/orders")
	b.wait("the orders list", fmt.Sprintf(`document.querySelector('tr[data-order-id="%s"]') !== null`, cancelled), 10*time.Second)
	b.docShot("orders")

	b.step = "phone width"
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch))
	for _, path := range []string{"/orders", "/orders/" + cancelled, "/faults", "/queue", "/stock"} {
		b.open(path)
		if got := b.eval(`document.documentElement.scrollWidth <= window.innerWidth + 1`); got != "true" {
			w := b.eval(`document.documentElement.scrollWidth + " > " + window.innerWidth`)
			b.fail("%s scrolls sideways at phone width (%s)", path, w)
		}
		if path == "/orders" {
			b.docShot("orders-phone")
		}
	}
	b.do(chromedp.EmulateViewport(1280, 900))
	t.Logf("browser test done in %s", time.Since(start).Round(time.Millisecond))
}
