// Package upstream holds the console's HTTP clients of the orderflow
// services: the order service's public API (Orders) and each service's
// loopback admin API (Admin). The console is a client like any other: it
// reaches the services only through these APIs.
//
// Every call returns one of three kinds of error besides a context error:
//   - *DownError: the service could not be reached (connection refused,
//     timeout, an answer that is not HTTP): show the service as down. When
//     the request was sent before that (Sent, OutcomeUnknown), the service
//     may have done what it asked: a change is neither done nor not done;
//   - *AnswerError: the service answered with success, but not with what
//     the console can read: for a change too, the outcome is unknown;
//   - *Problem: the service answered with an error status; its RFC 9457
//     body, when there is one, says why and which field is at fault.
package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// maxResponse caps what the console reads of one answer.
const maxResponse = 4 << 20

// DownError reports a service that could not be reached, or that gave no
// answer to a request it received.
type DownError struct {
	// Service is the service's name ("order", "payment admin", …).
	Service string
	// URL is the address that was tried, its password masked: the error
	// is shown on pages.
	URL string
	// Sent: the whole request was written before the failure (a timeout
	// waiting for the answer, a connection closed mid-answer), so the
	// service may have acted on it.
	Sent bool
	Err  error
}

func (e *DownError) Error() string {
	if e.Sent {
		return fmt.Sprintf("%s got the request but gave no answer (%s): %v", e.Service, e.URL, e.Err)
	}
	return fmt.Sprintf("%s is down (%s): %v", e.Service, e.URL, e.Err)
}

func (e *DownError) Unwrap() error { return e.Err }

// IsDown reports whether err says a service is unreachable.
func IsDown(err error) bool {
	var d *DownError
	return errors.As(err, &d)
}

// OutcomeUnknown reports a request that reached the service without an
// answer the console can read: what it asked for may or may not have been
// done. A request that could not be sent (connection refused, unknown
// host) was not done.
func OutcomeUnknown(err error) bool {
	var (
		d *DownError
		a *AnswerError
	)
	return errors.As(err, &d) && d.Sent || errors.As(err, &a)
}

// AnswerError reports a success (2xx) answer that the console cannot read:
// larger than it reads, or not the JSON expected. The service took the
// request and says it succeeded, yet what came of it is unknown; it is no
// refusal: a change may have been made.
type AnswerError struct {
	Service string
	// Method and Path are the request's.
	Method, Path string
	// Status is the answer's.
	Status int
	Err    error
}

func (e *AnswerError) Error() string {
	return fmt.Sprintf("%s answered %d to %s %s, but %v", e.Service, e.Status, e.Method, e.Path, e.Err)
}

func (e *AnswerError) Unwrap() error { return e.Err }

// FieldProblem is one field at fault in a Problem.
type FieldProblem struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// Problem is an error answer of a service: its status and its RFC 9457
// problem details when the body holds them.
type Problem struct {
	Service string         `json:"-"`
	Type    string         `json:"type"`
	Title   string         `json:"title"`
	Status  int            `json:"status"`
	Detail  string         `json:"detail"`
	Field   string         `json:"field"`
	Errors  []FieldProblem `json:"errors"`
}

func (p *Problem) Error() string {
	msg := p.Detail
	if msg == "" {
		msg = p.Title
	}
	if msg == "" {
		msg = http.StatusText(p.Status)
	}
	return fmt.Sprintf("%s answered %d: %s", p.Service, p.Status, msg)
}

// Fields returns every field at fault with its detail; a problem naming
// one field without a list gives that field its detail.
func (p *Problem) Fields() map[string]string {
	out := map[string]string{}
	for _, f := range p.Errors {
		if _, ok := out[f.Field]; !ok {
			out[f.Field] = f.Detail
		}
	}
	if p.Field != "" {
		if _, ok := out[p.Field]; !ok {
			out[p.Field] = p.Detail
		}
	}
	return out
}

// AsProblem returns the Problem in err's chain, if any.
func AsProblem(err error) (*Problem, bool) {
	var p *Problem
	ok := errors.As(err, &p)
	return p, ok
}

// Client calls one service's HTTP API. It is safe for concurrent use.
type Client struct {
	service string
	base    *url.URL
	http    *http.Client
	timeout time.Duration
}

// NewHTTPClient returns the http.Client the console calls services with:
// no global timeout (each call has its own) and no redirects followed. A
// service's API never redirects, so a redirect is answered as it is (a
// Problem) rather than followed to whatever host it names, with the
// console's credentials and request body.
func NewHTTPClient() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// NewClient returns a client of the service at baseURL (http or https, no
// query). hc defaults to NewHTTPClient(); timeout bounds each call
// (default 3s).
func NewClient(service, baseURL string, hc *http.Client, timeout time.Duration) (*Client, error) {
	u, err := ParseBaseURL(baseURL)
	if err != nil {
		return nil, fmt.Errorf("%s URL: %w", service, err)
	}
	if hc == nil {
		hc = NewHTTPClient()
	}
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	return &Client{service: service, base: u, http: hc, timeout: timeout}, nil
}

// ParseBaseURL checks that raw is an absolute http(s) URL without query
// or fragment, and returns it without a trailing slash.
func ParseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q: want an http:// or https:// URL", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q: no host", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q: a base URL takes no query or fragment", raw)
	}
	return u, nil
}

// Service is the name the client reports in errors.
func (c *Client) Service() string { return c.service }

// BaseURL is the service's address, for people: a password in it is
// masked (url.URL.Redacted), as it is in DownError.
func (c *Client) BaseURL() string { return c.base.Redacted() }

// request is one call.
type request struct {
	method string
	path   string // already escaped
	query  url.Values
	body   any
	header http.Header
}

// do sends r and decodes a 2xx JSON answer into out (when not nil).
func (c *Client) do(ctx context.Context, r request, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u, err := url.Parse(c.base.String() + r.path)
	if err != nil {
		return fmt.Errorf("%s request path %q: %w", c.service, r.path, err)
	}
	if len(r.query) > 0 {
		u.RawQuery = r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		data, err := json.Marshal(r.body)
		if err != nil {
			return fmt.Errorf("encode %s request: %w", c.service, err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		return fmt.Errorf("build %s request: %w", c.service, err)
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range r.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	// Whether the request went out tells "not done" from "maybe done" when
	// no answer comes. The transport may retry a request on another
	// connection: once any attempt was written, the outcome is unknown.
	var sent atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				sent.Store(true)
			}
		},
	}))
	resp, err := c.http.Do(req)
	if err != nil {
		if ctxErr := context.Cause(ctx); ctxErr != nil && !errors.Is(ctxErr, context.DeadlineExceeded) {
			return ctxErr // the caller gave up; the service is not to blame
		}
		return &DownError{Service: c.service, URL: c.BaseURL(), Sent: sent.Load(), Err: unwrapURLError(err)}
	}
	defer resp.Body.Close()
	// One byte past the cap tells an answer cut by it from one that fits.
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return &DownError{Service: c.service, URL: c.BaseURL(), Sent: true, Err: fmt.Errorf("read answer: %w", err)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.problem(resp, data[:min(len(data), maxResponse)]) // the status is what counts
	}
	// The service says it did what was asked: an answer the console
	// cannot read leaves the outcome unknown, and is no refusal.
	if len(data) > maxResponse {
		return &AnswerError{Service: c.service, Method: r.method, Path: r.path, Status: resp.StatusCode,
			Err: fmt.Errorf("the answer is larger than the %d MiB the console reads", maxResponse>>20)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &AnswerError{Service: c.service, Method: r.method, Path: r.path, Status: resp.StatusCode,
			Err: fmt.Errorf("the answer is not the expected JSON: %w", err)}
	}
	return nil
}

func (c *Client) problem(resp *http.Response, data []byte) error {
	if resp.StatusCode < 400 {
		// A redirect (not followed) or another status an API does not
		// answer with: a bad gateway, not a status for the console to
		// relay (a 3xx without its Location breaks the page).
		return &Problem{Service: c.service, Status: http.StatusBadGateway, Title: "Unexpected answer",
			Detail: fmt.Sprintf("%s %s: a redirect or other status the service's API never sends (%s)", resp.Request.Method, resp.Request.URL.Path, resp.Status)}
	}
	p := &Problem{}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/problem+json" || mt == "application/json" {
		_ = json.Unmarshal(data, p) // best effort: the status is what counts
	}
	p.Service = c.service
	p.Status = resp.StatusCode
	if p.Title == "" {
		p.Title = http.StatusText(resp.StatusCode)
	}
	if p.Detail == "" && mt == "text/plain" {
		p.Detail = strings.TrimSpace(string(data))
	}
	return p
}

// unwrapURLError drops the *url.Error wrapper, whose message repeats the
// method and URL already in DownError.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return errors.New("no answer in time")
		}
		return ue.Err
	}
	return err
}
