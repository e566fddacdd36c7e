package web

import (
	"fmt"
	"strings"

	"github.com/orderflow/orderflow/services/console/internal/upstream"
)

// providerView is one provider's record of an order, in words, as the
// "At the providers" card of the order page shows it.
type providerView struct {
	// Key names the provider in markup: "gateway" or "carrier".
	Key string
	// Name is the provider as people read it.
	Name string
	// Down says why the record could not be read.
	Down string
	// Outcome is the record's outcome, "NONE" without a record, "DOWN"
	// when it could not be read (for tests and scripts).
	Outcome string
	// Requests is how many requests reached the provider.
	Requests int
	// Summary is what the provider did; Calls how often it was asked.
	Summary string
	Calls   string
}

// providerWords name what a provider does, for providerText.
type providerWords struct {
	key, name string
	// do and done: the request and its effect ("charge", "charged");
	// undo and undone: the cancellation and its effect ("refund",
	// "refunded"); cancel names the cancellation ("refund"), thing the
	// effect ("charge"), refused a refusal ("declined").
	do, done, undo, undone, cancel, thing, refused string
}

var (
	gatewayWords = providerWords{key: "gateway", name: "Payment gateway",
		do: "charge", done: "charged", undo: "refund", undone: "refunded", cancel: "refund", thing: "charge", refused: "declined"}
	carrierWords = providerWords{key: "carrier", name: "Carrier",
		do: "book", done: "booked", undo: "cancel", undone: "withdrawn", cancel: "cancellation", thing: "booking", refused: "refused"}
)

// providerResult shows what reading a provider's record gave: the record
// in words, or why it could not be read.
// ended says whether the order is terminal: then a missing record means
// the provider was never asked (a rejected order never reaches the
// gateway, a declined one never the carrier), not "not yet".
func providerResult(w providerWords, currency string, ended bool, rec *upstream.ProviderRecord, err error) providerView {
	if err != nil {
		return providerView{Key: w.key, Name: w.name, Outcome: "DOWN", Down: downText(err)}
	}
	return providerText(w, currency, ended, rec)
}

// providerText puts a provider's record (nil: none) in words.
func providerText(w providerWords, currency string, ended bool, r *upstream.ProviderRecord) providerView {
	v := providerView{Key: w.key, Name: w.name, Outcome: "NONE"}
	if r == nil {
		v.Summary = "no record yet"
		if ended {
			v.Summary = "no record: never asked"
		}
		return v
	}
	v.Outcome, v.Requests = r.Outcome, r.Requests
	var calls []string
	switch r.Outcome {
	case upstream.OutcomeAccepted:
		v.Summary = w.done
		switch {
		case r.AmountCents != 0 && r.Reference != "":
			v.Summary += " " + money(r.AmountCents, currency) + " as " + r.Reference
		case r.AmountCents != 0:
			v.Summary += " " + money(r.AmountCents, currency)
		case r.Reference != "":
			v.Summary += " " + r.Reference
		}
		if r.Cancelled {
			v.Summary += ", then " + w.undone
		}
		calls = append(calls, asked("asked", r.Requests)+", "+w.done+" once"+repeats(r.Requests))
	case upstream.OutcomeRefused:
		v.Summary = w.refused
		if r.Reason != "" {
			v.Summary += ": " + r.Reason
		}
		calls = append(calls, asked("asked", r.Requests)+", "+w.refused+" once"+repeats(r.Requests))
	case upstream.OutcomeVoided:
		v.Summary = fmt.Sprintf("voided before any %s (a %s came first)", w.thing, w.cancel)
		switch {
		case r.Requests == 0:
			calls = append(calls, "never asked to "+w.do)
		case r.Requests == 1:
			calls = append(calls, "asked 1 time after that, refused")
		default:
			calls = append(calls, asked("asked", r.Requests)+" after that, refused each time")
		}
	default:
		v.Summary = "answered " + r.Outcome
		calls = append(calls, asked("asked", r.Requests))
	}
	if r.Cancels > 0 {
		c := asked(w.cancel+" asked", r.Cancels)
		switch {
		case r.Cancelled:
			c += ", " + w.undone + " once" + repeats(r.Cancels)
		case r.Outcome == upstream.OutcomeVoided && r.Cancels == 1:
			c += ", which voided the " + w.thing
		case r.Outcome == upstream.OutcomeVoided:
			c += ", the first voided the " + w.thing + repeats(r.Cancels)
		case r.Outcome == upstream.OutcomeAccepted:
			c += ", nothing " + w.undone // a cancellation of another reference
		default:
			c += ", nothing to " + w.undo
		}
		calls = append(calls, c)
	}
	v.Calls = strings.Join(calls, "; ")
	return v
}

// asked says "asked 1 time", "asked 2 times".
func asked(what string, n int) string {
	if n == 1 {
		return what + " 1 time"
	}
	return fmt.Sprintf("%s %d times", what, n)
}

// repeats says how many of n calls had no effect: all but the first.
func repeats(n int) string {
	switch {
	case n <= 1:
		return ""
	case n == 2:
		return " (1 repeat had no effect)"
	}
	return fmt.Sprintf(" (%d repeats had no effect)", n-1)
}
