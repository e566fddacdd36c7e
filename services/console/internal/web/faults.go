package web

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/services/console/internal/upstream"
)

// maxDuration is the longest duration a fault flag takes (pkg/faults).
const maxDuration = 10 * time.Minute

// serviceFaults is one service's section of the Faults page.
type serviceFaults struct {
	Service string
	URL     string
	// Down is why the service's flags are unknown ("" when they are known).
	Down  string
	Flags []flagView
}

// flagView is one flag row.
type flagView struct {
	upstream.Fault
	Service string
	// Input is what the value field shows (the value, or what was typed
	// when it was refused); Error says why it was refused.
	Input string
	Error string
	// Presets are one-click values.
	Presets []preset
}

type preset struct{ Label, Value string }

func presets(typ string) []preset {
	switch typ {
	case upstream.FaultRate:
		return []preset{{"0%", "0"}, {"10%", "0.1"}, {"50%", "0.5"}, {"100%", "1"}}
	case upstream.FaultDuration:
		return []preset{{"0", "0"}, {"200ms", "200ms"}, {"2s", "2s"}}
	case upstream.FaultBool:
		return []preset{{"On", "true"}, {"Off", "false"}}
	}
	return nil
}

func (s *Server) service(name string) (service, bool) {
	for _, sv := range s.services {
		if sv.Name == name {
			return sv, true
		}
	}
	return service{}, false
}

func (s *Server) loadFaults(ctx context.Context, sv service) serviceFaults {
	out := serviceFaults{Service: sv.Name, URL: sv.Admin.Client().BaseURL()}
	flags, err := sv.Admin.Faults(ctx)
	if err != nil {
		out.Down = downText(err)
		return out
	}
	for _, f := range flags {
		out.Flags = append(out.Flags, flagView{Fault: f, Service: sv.Name, Input: f.Value, Presets: presets(f.Type)})
	}
	return out
}

// loadAllFaults asks every service at once.
func (s *Server) loadAllFaults(ctx context.Context) []serviceFaults {
	return askEveryService(ctx, s.services, s.loadFaults)
}

// askEveryService calls ask for each service at once and returns the
// answers in the services' order. Each call is bounded by its upstream
// client's timeout and ctx.
func askEveryService[T any](ctx context.Context, services []service, ask func(context.Context, service) T) []T {
	out := make([]T, len(services))
	var wg sync.WaitGroup
	for i, sv := range services {
		wg.Go(func() { out[i] = ask(ctx, sv) })
	}
	wg.Wait()
	return out
}

// downText says why a call failed, for the page.
func downText(err error) string {
	if p, ok := upstream.AsProblem(err); ok {
		return p.Error()
	}
	return err.Error()
}

func (s *Server) faultsPage(c echo.Context) error {
	p := s.newPage(c, "Fault flags", "faults")
	all := s.loadAllFaults(c.Request().Context())
	if err := s.setBanner(p, all); err != nil {
		return err
	}
	sections := make([]template.HTML, 0, len(all))
	for _, sf := range all {
		h, err := s.faultsRegion(p, sf)
		if err != nil {
			return err
		}
		sections = append(sections, h)
	}
	p.Data = sections
	return s.writePage(c, "faults", p)
}

func (s *Server) faultsRegion(p *page, sf serviceFaults) (template.HTML, error) {
	h, _, err := s.liveHTML("faults", "service-faults", pageWith(p, sf),
		"faults-"+sf.Service, "/faults/"+sf.Service+"/live", s.cfg.Refresh*2, "faults-changed from:body")
	return h, err
}

func (s *Server) faultsLive(c echo.Context) error {
	name, err := pathParam(c, "service")
	if err != nil {
		return err
	}
	sv, ok := s.service(name)
	if !ok {
		return unknownService(name)
	}
	p := s.newPage(c, "", "faults")
	sf := s.loadFaults(c.Request().Context(), sv)
	return s.writeLive(c, "faults", "service-faults", pageWith(p, sf),
		"faults-"+sf.Service, "/faults/"+sf.Service+"/live", s.cfg.Refresh*2, "faults-changed from:body")
}

func unknownService(name string) error {
	return &pageError{status: http.StatusNotFound, title: "Unknown service",
		detail: fmt.Sprintf("There is no service %q; the services are order, inventory, payment and shipping.", name)}
}

// pageWith returns a copy of p holding data, for a fragment.
func pageWith(p *page, data any) *page {
	cp := *p
	cp.Data = data
	return &cp
}

func (s *Server) setFault(c echo.Context) error {
	value := c.FormValue("preset")
	if value == "" {
		value = c.FormValue("value")
	}
	return s.changeFault(c, func(ctx context.Context, a *upstream.Admin, f upstream.Fault) (upstream.Fault, string, error) {
		v, msg := normalizeFlagValue(f.Type, value)
		if msg != "" {
			return upstream.Fault{}, value, &fieldError{msg: msg}
		}
		nf, err := a.SetFault(ctx, f.Name, v)
		return nf, value, err
	})
}

func (s *Server) resetFault(c echo.Context) error {
	return s.changeFault(c, func(ctx context.Context, a *upstream.Admin, f upstream.Fault) (upstream.Fault, string, error) {
		nf, err := a.ResetFault(ctx, f.Name)
		return nf, "", err
	})
}

// fieldError is input the console refuses before asking a service.
type fieldError struct{ msg string }

func (e *fieldError) Error() string { return e.msg }

// changeFault runs change on one flag and answers with the service's
// section, the flag's error in its row when it was refused.
func (s *Server) changeFault(c echo.Context, change func(context.Context, *upstream.Admin, upstream.Fault) (upstream.Fault, string, error)) error {
	svName, err := pathParam(c, "service")
	if err != nil {
		return err
	}
	sv, ok := s.service(svName)
	if !ok {
		return unknownService(svName)
	}
	name, err := pathParam(c, "name")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	p := s.newPage(c, "Fault flags", "faults")
	sf := s.loadFaults(ctx, sv)

	status, fl := http.StatusOK, (*flash)(nil)
	idx := -1
	for i, f := range sf.Flags {
		if f.Name == name {
			idx = i
		}
	}
	switch {
	case sf.Down != "":
		status, fl = http.StatusServiceUnavailable, flashError(fmt.Sprintf("Flag not changed: %s", sf.Down))
	case idx < 0:
		status, fl = http.StatusNotFound, flashError(fmt.Sprintf("%s has no fault flag %q.", sv.Name, name))
	default:
		old := sf.Flags[idx]
		nf, typed, err := change(ctx, sv.Admin, old.Fault)
		var fe *fieldError
		prob, isProblem := upstream.AsProblem(err)
		switch {
		case err == nil:
			sf.Flags[idx] = flagView{Fault: nf, Service: sv.Name, Input: nf.Value, Presets: presets(nf.Type)}
			fl = flashOK(fmt.Sprintf("%s: %s is now %s (was %s).", sv.Name, name, quoteEmpty(nf.Value), quoteEmpty(old.Value)))
		case errors.As(err, &fe):
			status = http.StatusUnprocessableEntity
			sf.Flags[idx].Input, sf.Flags[idx].Error = typed, fe.msg
			fl = flashError(fmt.Sprintf("%s: %s not changed: %s", sv.Name, name, fe.msg))
		case isProblem && prob.Status < 500:
			status = http.StatusUnprocessableEntity
			if prob.Status == http.StatusNotFound {
				// The flag went away since the list was read: unknown, as
				// one the list does not hold.
				status = http.StatusNotFound
			}
			msg := prob.Detail
			if msg == "" {
				msg = prob.Title
			}
			sf.Flags[idx].Input, sf.Flags[idx].Error = typed, msg
			fl = flashError(fmt.Sprintf("%s: %s not changed: %s", sv.Name, name, msg))
		case upstream.OutcomeUnknown(err):
			status = http.StatusServiceUnavailable
			sf.Flags[idx].Input = typed
			fl = flashError(fmt.Sprintf("%s: %s may or may not be changed: %s. Look at its value before you change it again.",
				sv.Name, name, downText(err)))
		default:
			status = http.StatusServiceUnavailable
			sf.Flags[idx].Input = typed
			fl = flashError(fmt.Sprintf("%s: %s not changed: %s", sv.Name, name, downText(err)))
		}
	}
	if !isHTMX(c) {
		if status == http.StatusOK {
			return redirectWithFlash(c, "/faults#faults-"+sv.Name, fl)
		}
		all := s.loadAllFaults(ctx)
		if err := s.setBanner(p, all); err != nil {
			return err
		}
		sections := make([]template.HTML, 0, len(all))
		for _, other := range all {
			if other.Service == sv.Name {
				other = sf
			}
			h, err := s.faultsRegion(p, other)
			if err != nil {
				return err
			}
			sections = append(sections, h)
		}
		p.Data, p.Flash, p.Status = sections, fl, status
		return s.writePage(c, "faults", p)
	}
	region, err := s.faultsRegion(p, sf)
	if err != nil {
		return err
	}
	return s.writeAction(c, status, region, fl, "faults-changed")
}

func quoteEmpty(v string) string {
	if v == "" {
		return `""`
	}
	return v
}

// normalizeFlagValue checks a typed value against the flag's type and
// returns it as the admin API takes it, or a message saying what is wrong.
// A rate may be given as a percentage ("50%").
func normalizeFlagValue(typ, raw string) (string, string) {
	v := strings.TrimSpace(raw)
	switch typ {
	case upstream.FaultRate:
		pct := strings.HasSuffix(v, "%")
		num := strings.TrimSpace(strings.TrimSuffix(v, "%"))
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return "", fmt.Sprintf("a rate is a number from 0 to 1 (or 0%% to 100%%), got %q", raw)
		}
		if pct {
			f /= 100
		}
		if f < 0 || f > 1 {
			return "", fmt.Sprintf("a rate is from 0 to 1 (0%% to 100%%), got %q", raw)
		}
		if f == 0 {
			f = 0 // not -0, which the service would store and show as an active fault
		}
		return strconv.FormatFloat(f, 'f', -1, 64), ""
	case upstream.FaultDuration:
		if v == "0" {
			return v, ""
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return "", fmt.Sprintf("a duration is like 250ms, 2s or 0, got %q", raw)
		}
		if d < 0 || d > maxDuration {
			return "", fmt.Sprintf("a duration is from 0 to %s, got %q", maxDuration, raw)
		}
		return v, ""
	case upstream.FaultBool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return "", fmt.Sprintf("a switch is true or false, got %q", raw)
		}
		return strconv.FormatBool(b), ""
	default:
		if len(v) > 1000 {
			return "", "the value is longer than 1000 characters"
		}
		return v, ""
	}
}

// banner is the fault banner's content.
type banner struct {
	Active []flagView
	Down   []serviceFaults
}

func (s *Server) bannerHTML(ctx context.Context) (template.HTML, string, error) {
	return s.bannerOf(s.loadAllFaults(ctx))
}

// setBanner puts in p the banner of flags the page has loaded already.
func (s *Server) setBanner(p *page, all []serviceFaults) error {
	var err error
	p.Banner, _, err = s.bannerOf(all)
	p.bannerLoaded = true
	return err
}

// bannerOf renders the banner of every service's flags.
func (s *Server) bannerOf(all []serviceFaults) (template.HTML, string, error) {
	var b banner
	for _, sf := range all {
		if sf.Down != "" {
			b.Down = append(b.Down, sf)
		}
		for _, f := range sf.Flags {
			if f.Active() {
				b.Active = append(b.Active, f)
			}
		}
	}
	return s.liveHTML("partials", "banner", b, "fault-banner", "/banner", s.cfg.Refresh*2, "faults-changed from:body")
}

func (s *Server) banner(c echo.Context) error {
	html, sig, err := s.bannerHTML(c.Request().Context())
	if err != nil {
		return err
	}
	return answerPoll(c, html, sig)
}
