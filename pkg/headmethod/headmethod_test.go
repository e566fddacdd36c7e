package headmethod_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/labstack/echo/v4"
	"go.uber.org/goleak"

	"github.com/orderflow/orderflow/pkg/headmethod"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Over a real HTTP server (net/http drops the body of a HEAD answer, not
// echo): HEAD gets GET's status and headers and no body; other methods
// are routed as before.
func TestHeadIsAnsweredLikeGetWithoutABody(t *testing.T) {
	e := echo.New()
	e.GET("/orders/:id", func(c echo.Context) error {
		c.Response().Header().Set("X-Order", c.Param("id"))
		return c.JSON(http.StatusOK, map[string]string{"id": c.Param("id")})
	})
	e.POST("/orders", func(c echo.Context) error { return c.NoContent(http.StatusCreated) })
	srv := httptest.NewServer(headmethod.Handler(e))
	defer srv.Close()

	for _, tc := range []struct {
		method, path string
		wantStatus   int
		wantBody     bool
		wantOrder    string
	}{
		{http.MethodHead, "/orders/o-1", http.StatusOK, false, "o-1"},
		{http.MethodGet, "/orders/o-1", http.StatusOK, true, "o-1"},
		{http.MethodHead, "/missing", http.StatusNotFound, false, ""},
		{http.MethodHead, "/orders", http.StatusMethodNotAllowed, false, ""}, // only POST there
		{http.MethodPost, "/orders", http.StatusCreated, false, ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status: got %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if got := len(body) > 0; got != tc.wantBody {
				t.Errorf("body: got %q, want a body: %v", body, tc.wantBody)
			}
			if got := resp.Header.Get("X-Order"); got != tc.wantOrder {
				t.Errorf("X-Order: got %q, want %q", got, tc.wantOrder)
			}
		})
	}
}

// Method tells the handler the method the client sent.
func TestMethodIsTheClientsMethod(t *testing.T) {
	var got []string
	h := headmethod.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" as "+headmethod.Method(r))
	}))
	for _, m := range []string{http.MethodHead, http.MethodGet, http.MethodPost} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(m, "/", nil))
	}
	want := []string{"GET as HEAD", "GET as GET", "POST as POST"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
