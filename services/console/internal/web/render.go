package web

import (
	"bytes"
	"context"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/orderflow/orderflow/pkg/plaintext"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pageNames are the template files besides layout.html and partials.html;
// each is parsed with those two into its own set.
var pageNames = []string{"orders", "order", "faults", "queue", "deadletter", "stock", "error"}

type renderer struct {
	sets map[string]*template.Template
}

func newRenderer() (*renderer, error) {
	base, err := template.New("base").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html")
	if err != nil {
		return nil, fmt.Errorf("parse templates: %w", err)
	}
	r := &renderer{sets: map[string]*template.Template{"partials": base}}
	for _, name := range pageNames {
		t, err := base.Clone()
		if err != nil {
			return nil, err
		}
		if _, err := t.ParseFS(templateFS, "templates/"+name+".html"); err != nil {
			return nil, fmt.Errorf("parse template %s: %w", name, err)
		}
		r.sets[name] = t
	}
	return r, nil
}

// render executes template name of set into a string.
func (r *renderer) render(set, name string, data any) (template.HTML, error) {
	t, ok := r.sets[set]
	if !ok {
		return "", fmt.Errorf("no template set %q", set)
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, name, data); err != nil {
		return "", fmt.Errorf("render %s/%s: %w", set, name, err)
	}
	return template.HTML(b.String()), nil //nolint:gosec // produced by html/template
}

func (r *renderer) writePage(c echo.Context, status int, set string, p *page) error {
	html, err := r.render(set, "layout", p)
	if err != nil {
		return err
	}
	return c.HTMLBlob(status, []byte(html))
}

func (r *renderer) writeFragment(c echo.Context, status int, set, name string, data any) error {
	html, err := r.render(set, name, data)
	if err != nil {
		return err
	}
	return c.HTMLBlob(status, []byte(html))
}

// page is what every page template receives.
type page struct {
	Title string
	// Nav is the active menu entry.
	Nav string
	// CSRF is the token every form carries.
	CSRF string
	// Flash is shown at the top of the page.
	Flash *flash
	// Banner is the fault banner, rendered.
	Banner template.HTML
	// Refresh is the polling period of live parts, in milliseconds.
	Refresh int64
	// Status is the HTTP status of the answer.
	Status int
	// Data is the page's own content.
	Data any
	// bannerLoaded: Banner was loaded with the page's data.
	bannerLoaded bool
}

func (s *Server) newPage(c echo.Context, title, nav string) *page {
	p := &page{Title: title, Nav: nav, Refresh: s.cfg.Refresh.Milliseconds(), Status: http.StatusOK}
	p.CSRF, _ = c.Get(middleware.DefaultCSRFConfig.ContextKey).(string)
	return p
}

// writePage renders a full page, with the fault banner and the flash left
// by the last form posted without JavaScript.
func (s *Server) writePage(c echo.Context, set string, p *page) error {
	if p.Flash == nil {
		p.Flash = takeFlash(c)
	}
	if !p.bannerLoaded {
		if err := s.loadWithBanner(c.Request().Context(), p); err != nil {
			return err
		}
	}
	return s.pages.writePage(c, p.Status, set, p)
}

// loadWithBanner runs loads and the load of the fault banner at once
// (parallel), and puts the banner in p.
func (s *Server) loadWithBanner(ctx context.Context, p *page, loads ...func()) error {
	var err error
	parallel(append(loads, func() { p.Banner, _, err = s.bannerHTML(ctx) })...)
	p.bannerLoaded = true
	return err
}

// flash is a message about the last action.
type flash struct {
	Kind string // "ok" or "error"
	Msg  string
	// Link, when set, is shown after the message.
	Link     string
	LinkText string
	// OrderID marks a placed order (for tests and scripts).
	OrderID string
}

func flashOK(msg string) *flash    { return &flash{Kind: "ok", Msg: msg} }
func flashError(msg string) *flash { return &flash{Kind: "error", Msg: msg} }

const flashCookie = "_console_flash"

// redirectWithFlash answers a form posted without JavaScript: the message
// goes in a short-lived cookie shown by the next page, then 303 to path.
func redirectWithFlash(c echo.Context, path string, f *flash) error {
	if f != nil {
		data, _ := json.Marshal(f)
		c.SetCookie(&http.Cookie{Name: flashCookie, Value: base64.RawURLEncoding.EncodeToString(data), Path: "/",
			MaxAge: 60, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	}
	return c.Redirect(http.StatusSeeOther, path)
}

// takeFlash reads and clears the flash cookie.
func takeFlash(c echo.Context) *flash {
	ck, err := c.Cookie(flashCookie)
	if err != nil {
		return nil
	}
	c.SetCookie(&http.Cookie{Name: flashCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	data, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil {
		return nil
	}
	var f flash
	if json.Unmarshal(data, &f) != nil || (f.Kind != "ok" && f.Kind != "error") {
		return nil
	}
	if !localPath(f.Link) {
		f.Link = ""
	}
	return &f
}

// localPath accepts a link to one of the console's own pages: a path,
// without scheme or host. The flash cookie can be planted by another page
// of the same host (cookies are not told apart by port), so its link must
// not lead elsewhere: browsers read //evil.example and /\evil.example as
// another host.
func localPath(link string) bool {
	if !strings.HasPrefix(link, "/") || strings.HasPrefix(link, "//") || strings.Contains(link, "\\") {
		return false
	}
	u, err := url.Parse(link) // refuses control characters, which browsers drop
	return err == nil && u.Scheme == "" && u.Host == "" && u.User == nil
}

// live is a region of a page that refreshes itself: htmx GETs Src every
// Every (and on the events in On), sending the signature of what it shows;
// the server answers 204 when nothing changed, else the new region.
type live struct {
	ID    string
	Src   string // with since=
	Every int64  // ms; 0 stops polling
	On    string // extra hx-trigger events, e.g. "orders-changed from:body"
	Inner template.HTML
}

// liveHTML renders fragment name of set with data and wraps it in a live
// region polling src every every (0: no polling). It returns the region and
// its signature.
func (s *Server) liveHTML(set, name string, data any, id, src string, every time.Duration, on string) (template.HTML, string, error) {
	return s.liveHTMLSigned(set, name, data, nil, id, src, every, on)
}

// liveHTMLSigned is liveHTML for a fragment that holds values made afresh
// at each render (random idempotency keys): its signature is taken over
// the fragment rendered with signData, which leaves them out, so that a
// poll of a region whose data has not changed still answers 204. A nil
// signData signs what is shown.
func (s *Server) liveHTMLSigned(set, name string, data, signData any, id, src string, every time.Duration, on string) (template.HTML, string, error) {
	inner, err := s.pages.render(set, name, data)
	if err != nil {
		return "", "", err
	}
	signed := inner
	if signData != nil {
		if signed, err = s.pages.render(set, name, signData); err != nil {
			return "", "", err
		}
	}
	// The signature covers what the wrapper carries too: a region that
	// stops polling (an order past its redelivery window) shows the same
	// inner HTML, and a 204 would leave the browser polling for good.
	sig := signature(id, src, strconv.FormatInt(every.Milliseconds(), 10), on, string(signed))
	u, err := url.Parse(src)
	if err != nil {
		return "", "", err
	}
	q := u.Query()
	q.Set("since", sig)
	u.RawQuery = q.Encode()
	l := live{ID: id, Src: u.String(), Every: every.Milliseconds(), On: on, Inner: inner}
	out, err := s.pages.render("partials", "live", l)
	return out, sig, err
}

// writeLive answers a poll of a live region: 204 when the client already
// shows this content, else the region.
func (s *Server) writeLive(c echo.Context, set, name string, data any, id, src string, every time.Duration, on string) error {
	html, sig, err := s.liveHTML(set, name, data, id, src, every, on)
	if err != nil {
		return err
	}
	return answerPoll(c, html, sig)
}

// answerPoll answers a poll with region, or 204 when the client already
// shows it (its since is sig).
func answerPoll(c echo.Context, region template.HTML, sig string) error {
	if isHTMX(c) && c.QueryParam("since") == sig {
		return c.NoContent(http.StatusNoContent)
	}
	return c.HTMLBlob(http.StatusOK, []byte(region))
}

// writeAction answers an htmx form: the region it targets, re-rendered,
// and the flash (out of band, into #flash). trigger names client events
// to fire (HX-Trigger), e.g. "orders-changed".
func (s *Server) writeAction(c echo.Context, status int, region template.HTML, f *flash, trigger string) error {
	fl, err := s.pages.render("partials", "flash-oob", f)
	if err != nil {
		return err
	}
	if trigger != "" {
		c.Response().Header().Set("HX-Trigger", trigger)
	}
	return c.HTMLBlob(status, []byte(string(region)+string(fl)))
}

// signature is a short hash of parts, told apart from each other.
func signature(parts ...string) string {
	f := fnv.New64a()
	for _, p := range parts {
		_, _ = f.Write([]byte(p))
		_, _ = f.Write([]byte{0})
	}
	return strconv.FormatUint(f.Sum64(), 36)
}

var funcs = template.FuncMap{
	"money":      money,
	"clock":      clock,
	"datetime":   datetime,
	"duration":   humanDuration,
	"lower":      strings.ToLower,
	"title":      titleCase,
	"join":       strings.Join,
	"short":      shortID,
	"payload":    payloadText,
	"plain":      plainText,
	"quoteEmpty": quoteEmpty,
	"took":       took,
	"pathSeg":    url.PathEscape,
}

func money(cents int64, currency string) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, cents/100, cents%100, currency)
}

func clock(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("15:04:05.000")
}

func datetime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// humanDuration shows d rounded for people: 850ms, 1.2s, 3m05s.
func humanDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + humanDuration(-d)
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return d.Round(time.Minute).String()
}

func titleCase(s string) string {
	s = strings.ReplaceAll(strings.ToLower(s), "_", " ")
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// shortID keeps the end of an id for tables: order ids start with their
// time, so their ends tell them apart.
func shortID(id string) string {
	if len(id) <= 12 {
		return id
	}
	return "…" + id[len(id)-8:]
}

// payloadText shows a payload for people: indented JSON when it is JSON,
// text with control and bidirectional formatting characters escaped
// (plaintext.Unsafe) when it is UTF-8, else base64.
// JSON is indented as it is, token for token: decoded and encoded again it
// would not be the payload any more (big integers rounded, 1.0 written 1,
// keys sorted and repeated ones dropped, < written \u003c).
func payloadText(p []byte) string {
	if !utf8.Valid(p) {
		return "(binary, base64) " + base64.StdEncoding.EncodeToString(p)
	}
	if json.Valid(p) {
		var out bytes.Buffer
		// Indent drops the spaces before the value; those after it are
		// layout too.
		if json.Indent(&out, bytes.TrimRight(p, " \t\r\n"), "", "  ") == nil {
			p = out.Bytes()
		}
	}
	return plainText(string(p))
}

// plainText is s with its control and bidirectional formatting characters
// (plaintext.Unsafe) but line breaks and tabs escaped (\x1b, \u202e), for
// text that comes from messages rather than from the console: a
// dead letter's last error and metadata. The template escapes HTML; a
// right-to-left override it keeps would reorder the text after it.
func plainText(s string) string {
	if !strings.ContainsFunc(s, plaintext.Unsafe) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\t' || !plaintext.Unsafe(r):
			b.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(&b, `\x%02x`, r)
		default: // a bidirectional formatting character
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}
