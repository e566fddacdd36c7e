package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCSRF(t *testing.T) {
	e := newEnv(t)
	post := func(headers map[string]string, form url.Values, cookie *http.Cookie) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/stock/SKU-1/restock", strings.NewReader(form.Encode()))
		req.Host = "127.0.0.1:8090"
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		if cookie != nil {
			req.AddCookie(cookie)
		}
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		return rec
	}
	qty := url.Values{"quantity": {"1"}}
	withToken := url.Values{"quantity": {"1"}, csrfField: {"tok"}}
	tests := []struct {
		name    string
		headers map[string]string
		form    url.Values
		cookie  *http.Cookie
		want    int
	}{
		{"no token, no cookie", nil, qty, nil, http.StatusForbidden},
		{"token without its cookie", nil, withToken, nil, http.StatusForbidden},
		{"cookie and a different token", nil, url.Values{"quantity": {"1"}, csrfField: {"other"}}, &http.Cookie{Name: csrfCookie, Value: "tok"}, http.StatusForbidden},
		{"cookie and its token", nil, withToken, &http.Cookie{Name: csrfCookie, Value: "tok"}, http.StatusSeeOther},
		{"token in the header", map[string]string{"X-CSRF-Token": "tok"}, qty, &http.Cookie{Name: csrfCookie, Value: "tok"}, http.StatusSeeOther},
		{"cross-site browser request", map[string]string{"Sec-Fetch-Site": "cross-site"}, withToken, &http.Cookie{Name: csrfCookie, Value: "tok"}, http.StatusForbidden},
		{"same-site browser request without a token", map[string]string{"Sec-Fetch-Site": "same-site"}, qty, nil, http.StatusForbidden},
		// A page on another port of this host can set the cookie and post
		// the token it chose.
		{"same-site browser request with the cookie and its token", map[string]string{"Sec-Fetch-Site": "same-site"}, withToken, &http.Cookie{Name: csrfCookie, Value: "tok"}, http.StatusForbidden},
		{"same-origin browser request", map[string]string{"Sec-Fetch-Site": "same-origin"}, qty, nil, http.StatusSeeOther},
		// A request the person started (the address bar, a bookmark): no
		// other page can make a browser send none.
		{"browser request the person started", map[string]string{"Sec-Fetch-Site": "none"}, qty, nil, http.StatusSeeOther},
		{"none with another Origin", map[string]string{"Sec-Fetch-Site": "none", "Origin": "http://evil.example"}, qty, nil, http.StatusForbidden},
		{"Origin of the console", map[string]string{"Origin": "http://127.0.0.1:8090"}, withToken, &http.Cookie{Name: csrfCookie, Value: "tok"}, http.StatusSeeOther},
		{"Origin on another port", map[string]string{"Origin": "http://127.0.0.1:9999"}, withToken, &http.Cookie{Name: csrfCookie, Value: "tok"}, http.StatusForbidden},
		{"Origin of another site", map[string]string{"Origin": "http://evil.example"}, withToken, &http.Cookie{Name: csrfCookie, Value: "tok"}, http.StatusForbidden},
		{"Origin null", map[string]string{"Origin": "null"}, withToken, &http.Cookie{Name: csrfCookie, Value: "tok"}, http.StatusForbidden},
		{"same-origin with another Origin", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://evil.example"}, qty, nil, http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := post(tc.headers, tc.form, tc.cookie)
			if rec.Code != tc.want {
				t.Fatalf("status: got %d, want %d\n%s", rec.Code, tc.want, rec.Body)
			}
			if tc.want == http.StatusForbidden {
				mustContain(t, tc.name, rec.Body.String(), "Request refused", "could not be verified")
			}
		})
	}
	if _, _, restocks := e.admins[ServiceInventory].calls(); len(restocks) != 5 {
		t.Errorf("restocks: got %d, want 5 (the accepted requests only)", len(restocks))
	}
	t.Run("htmx gets a flash", func(t *testing.T) {
		rec := post(map[string]string{"HX-Request": "true"}, qty, nil)
		if rec.Code != http.StatusForbidden {
			t.Fatalf("status: got %d, want 403", rec.Code)
		}
		mustContain(t, "htmx", rec.Body.String(), `hx-swap-oob="true"`, "Request refused")
		mustNotContain(t, "htmx", rec.Body.String(), "<!doctype html>")
	})
}

func TestHostCheck(t *testing.T) {
	serve := func(e *env, method, target, host string, headers map[string]string) int {
		req := httptest.NewRequest(method, target, strings.NewReader("quantity=1"))
		req.Host = host
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		return rec.Code
	}
	t.Run("default: the loopback names", func(t *testing.T) {
		e := newEnv(t) // no AllowedHosts: the check is on all the same
		for _, tc := range []struct {
			host string
			want int
		}{
			{"127.0.0.1:8090", http.StatusOK},
			{"localhost:8090", http.StatusOK},
			{"[::1]:8090", http.StatusOK},
			{"LOCALHOST", http.StatusOK},
			{"evil.example:8090", http.StatusMisdirectedRequest},
			{"10.0.0.1:8090", http.StatusMisdirectedRequest},
			{"localhost.evil.example:8090", http.StatusMisdirectedRequest},
			{"", http.StatusMisdirectedRequest},
		} {
			if got := serve(e, http.MethodGet, "/healthz", tc.host, nil); got != tc.want {
				t.Errorf("Host %q: got %d, want %d", tc.host, got, tc.want)
			}
		}
		// DNS rebinding: evil.example now resolves to 127.0.0.1, and to the
		// browser its page and the console are the same origin.
		rebound := map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://evil.example:8090"}
		if got := serve(e, http.MethodPost, "/stock/SKU-1/restock", "evil.example:8090", rebound); got != http.StatusMisdirectedRequest {
			t.Errorf("POST from a rebound name: got %d, want 421", got)
		}
		if _, _, restocks := e.admins[ServiceInventory].calls(); len(restocks) != 0 {
			t.Errorf("restocks: got %v, want none", restocks)
		}
	})
	t.Run("configured names", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.AllowedHosts = []string{"Console.Example", "[::1]"} })
		for _, tc := range []struct {
			host string
			want int
		}{
			{"console.example:8090", http.StatusOK},
			{"CONSOLE.EXAMPLE", http.StatusOK},
			{"console.example.:8090", http.StatusOK}, // a fully qualified name
			{"[::1]:8090", http.StatusOK},
			{"localhost:8090", http.StatusMisdirectedRequest},
			{"127.0.0.1:8090", http.StatusMisdirectedRequest},
		} {
			if got := serve(e, http.MethodGet, "/healthz", tc.host, nil); got != tc.want {
				t.Errorf("Host %q: got %d, want %d", tc.host, got, tc.want)
			}
		}
	})
}

func TestStaticHeadersAndErrors(t *testing.T) {
	e := newEnv(t)
	c := newClient(t, e.srv)
	for _, tc := range []struct {
		path, ctype, want string
	}{
		{"/static/htmx.min.js", "text/javascript", "htmx 2.0.11"},
		{"/static/console.css", "text/css", ".timeline"},
		{"/static/htmx.LICENSE", "", "Zero-Clause BSD"},
		{"/static/console.js", "text/javascript", "htmx:beforeSwap"},
	} {
		r := c.get(tc.path, false)
		if r.Code != http.StatusOK || !strings.Contains(r.Body, tc.want) || !strings.HasPrefix(r.Header.Get("Content-Type"), tc.ctype) {
			t.Errorf("%s: got %d %q, want 200 %s holding %q", tc.path, r.Code, r.Header.Get("Content-Type"), tc.ctype, tc.want)
		}
	}
	r := c.get("/orders", false)
	for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"} {
		if r.Header.Get(h) == "" {
			t.Errorf("header %s missing", h)
		}
	}
	if got := r.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control of a page: got %q, want no-store", got)
	}
	if r := c.get("/", false); r.Code != http.StatusSeeOther || r.Header.Get("Location") != "/orders" {
		t.Errorf("/: got %d to %q, want 303 to /orders", r.Code, r.Header.Get("Location"))
	}
	r = c.get("/no/such/page", false)
	if r.Code != http.StatusNotFound {
		t.Fatalf("unknown page: got %d, want 404", r.Code)
	}
	mustContain(t, "unknown page", r.Body, "<!doctype html>", "There is no such page in the console.")
	r = c.get("/no/such/page", true)
	mustContain(t, "unknown page to htmx", r.Body, `id="flash"`, "no such page")
	if got := r.Header.Get("HX-Reswap"); got != "none" {
		t.Errorf("HX-Reswap of an error to htmx: got %q, want none (keep the region)", got)
	}
	// A method the route does not take is 405 whatever the CSRF headers:
	// nothing would change.
	for _, tc := range []struct {
		method, path string
		headers      map[string]string
	}{
		{http.MethodPut, "/orders", map[string]string{"Sec-Fetch-Site": "same-origin"}},
		{http.MethodPut, "/orders", nil},
		{http.MethodDelete, "/orders", nil},
		{http.MethodDelete, "/orders", map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{http.MethodPatch, "/stock/SKU-1/restock", map[string]string{"Origin": "http://evil.example"}},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		for k, v := range tc.headers {
			req.Header.Set(k, v)
		}
		r := c.do(req)
		if r.Code != http.StatusMethodNotAllowed || r.Header.Get("Allow") == "" {
			t.Errorf("%s %s with %v: got %d (Allow %q), want 405 with Allow", tc.method, tc.path, tc.headers, r.Code, r.Header.Get("Allow"))
		}
	}
	big := httptest.NewRequest(http.MethodPost, "/orders", strings.NewReader("customer_id="+strings.Repeat("x", 70<<10)))
	big.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	big.Header.Set("Sec-Fetch-Site", "same-origin")
	if r := c.do(big); r.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("large form: got %d, want 413", r.Code)
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{OrderURL: "http://a", OrderAdminURL: "http://b", InventoryURL: "http://c", PaymentURL: "http://d",
		ShippingURL: "http://e", Queue: NewQueueStore("sqlite://x")}
	if _, err := New(good); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for name, mutate := range map[string]func(*Config){
		"no queue":        func(c *Config) { c.Queue = nil },
		"bad order URL":   func(c *Config) { c.OrderURL = "localhost:8080" },
		"bad jaeger URL":  func(c *Config) { c.JaegerUIURL = "ftp://x" },
		"query in a URL":  func(c *Config) { c.PaymentURL = "http://d?x=1" },
		"refresh too low": func(c *Config) { c.Refresh = time.Millisecond },
		"upstream timeout past the write timeout": func(c *Config) { c.UpstreamTimeout = 15 * time.Second },
		"host with port": func(c *Config) { c.AllowedHosts = []string{"localhost:8090"} },
		"host as a URL":  func(c *Config) { c.AllowedHosts = []string{"http://localhost"} },
		"empty host":     func(c *Config) { c.AllowedHosts = []string{"localhost", ""} },
		"bracketed name": func(c *Config) { c.AllowedHosts = []string{"[console]"} },
	} {
		c := good
		mutate(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: got no error", name)
		} else if !strings.HasPrefix(err.Error(), "invalid config: ") {
			// The program that calls New names itself ("console: …").
			t.Errorf("%s: got %q, want it to start with \"invalid config: \"", name, err)
		}
	}
}
