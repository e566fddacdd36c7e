package ports

import (
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
)

// allowHead is echo middleware that adds HEAD to the Allow header of a
// path that takes GET, on a 405 and on the answer to OPTIONS (which it
// writes itself, 204): NewHTTPServer answers HEAD there (headmethod), but
// echo's router, which has no HEAD route, leaves it out. It must run
// after routing (echo's Use), which sets the Allow of the path.
func allowHead(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		allow, ok := c.Get(echo.ContextKeyHeaderAllow).(string)
		if !ok || allow == "" {
			return next(c) // a route of the method, or no path at all
		}
		allow = withHead(allow)
		if c.Request().Method == http.MethodOptions {
			c.Response().Header().Set(echo.HeaderAllow, allow)
			return c.NoContent(http.StatusNoContent)
		}
		c.Set(echo.ContextKeyHeaderAllow, allow) // echo's 405 sends it
		return next(c)
	}
}

// withHead adds HEAD after GET to allow, a list of methods as echo writes
// it ("OPTIONS, GET, POST"), if GET is there and HEAD is not.
func withHead(allow string) string {
	methods := strings.Split(allow, ", ")
	get := slices.Index(methods, http.MethodGet)
	if get < 0 || slices.Contains(methods, http.MethodHead) {
		return allow
	}
	return strings.Join(slices.Insert(methods, get+1, http.MethodHead), ", ")
}
