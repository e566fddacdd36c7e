package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/pkg/faults"
	"github.com/orderflow/orderflow/pkg/jsonbody"
	"github.com/orderflow/orderflow/queue"
	"github.com/orderflow/orderflow/queue/backend"
)

type faultRoutes struct {
	reg *faults.Registry
}

// The fault routes take no query parameter: a ?value= beside a body, or a
// filter on the list, is refused (CheckQuery), not ignored. The {name} of
// a flag is percent-decoded (PathParam).

func (f *faultRoutes) list(c echo.Context) error {
	if err := CheckQuery(c.QueryString()); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, f.reg.Snapshot())
}

func (f *faultRoutes) get(c echo.Context) error {
	if err := CheckQuery(c.QueryString()); err != nil {
		return err
	}
	name, err := PathParam(c, "name")
	if err != nil {
		return err
	}
	st, err := f.reg.Get(name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

// set accepts {"value": "0.5"}; the value may also be a JSON number or
// bool ({"value": 0.5}, {"value": true}).
func (f *faultRoutes) set(c echo.Context) error {
	if err := CheckQuery(c.QueryString()); err != nil {
		return err
	}
	name, err := PathParam(c, "name")
	if err != nil {
		return err
	}
	if _, err := f.reg.Get(name); err != nil {
		return err
	}
	var body struct {
		Value json.RawMessage `json:"value"`
	}
	if err := DecodeJSON(c, &body); err != nil {
		return err
	}
	value, err := flagValue(body.Value)
	if err != nil {
		return err
	}
	if err := f.reg.Set(name, value); err != nil {
		var invalid *faults.ValueError
		if errors.As(err, &invalid) {
			return BadField("value", invalid.Problem)
		}
		// The value was taken, and the action it sets off failed (the
		// poison message not published): not the client's fault, a 5xx.
		return err
	}
	st, err := f.reg.Get(name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

func flagValue(raw json.RawMessage) (string, error) {
	// A null value is no value: like a missing one it is refused, not
	// read as the zero of the flag's type.
	if len(raw) == 0 || string(raw) == "null" {
		return "", BadField("value", `is required and must not be null, e.g. {"value": "0.5"}`)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return n.String(), nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err == nil {
		return strconv.FormatBool(b), nil
	}
	return "", BadField("value", "must be a string, a number or a boolean")
}

func (f *faultRoutes) reset(c echo.Context) error {
	if err := CheckQuery(c.QueryString()); err != nil {
		return err
	}
	name, err := PathParam(c, "name")
	if err != nil {
		return err
	}
	if err := f.reg.Reset(name); err != nil {
		return err
	}
	st, err := f.reg.Get(name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

// DecodeJSON reads the request body, one JSON object, into v with the
// order API's reader, jsonbody.Decode, whatever the Content-Type (curl
// -d sends a form type): a member unknown, given twice or spelt in
// another case, a value of another type or out of its field's range,
// invalid UTF-8, an escaped lone surrogate or data after the object is a
// 400, a FieldError when a member is at fault; an integer field takes any
// number without a fractional part (2.0, 1e2). An empty body leaves v as
// it is.
func DecodeJSON(c echo.Context, v any) error {
	data, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var maxErr *http.MaxBytesError
		var he *echo.HTTPError
		switch {
		case errors.As(err, &maxErr):
			return echo.ErrStatusRequestEntityTooLarge
		case errors.As(err, &he): // the body limit middleware
			return he
		}
		return badRequest(fmt.Sprintf("cannot read the request body: %v", err))
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	var bad *jsonbody.Error
	if err := jsonbody.Decode(data, v); errors.As(err, &bad) {
		if bad.Field != "" {
			return BadField(bad.Field, bad.Detail)
		}
		return badRequest(bad.Detail)
	}
	return nil
}

type dlqRoutes struct {
	b      backend.Backend
	logger *slog.Logger
}

// DeadLetter is a dead letter as the admin API shows it (and queuectl
// --json): the payload as text when it is UTF-8, else base64.
type DeadLetter = backend.DeadLetterView

// filter reads ?topic=, ?group= and, with limit, ?limit= (1..1000). Any
// other query parameter is an error: a misspelt filter (?topics=) must not
// select every dead letter, least of all for a purge.
func filter(c echo.Context, withLimit bool) (backend.DeadLetterFilter, error) {
	known := []string{"topic", "group"}
	if withLimit {
		known = append(known, "limit")
	}
	if err := CheckQuery(c.QueryString(), known...); err != nil {
		return backend.DeadLetterFilter{}, err
	}
	f := backend.DeadLetterFilter{Topic: c.QueryParam("topic"), ConsumerGroup: c.QueryParam("group")}
	if f.Topic != "" {
		if err := backend.ValidateTopic(f.Topic); err != nil {
			return f, BadField("topic", err.Error())
		}
	}
	if l := c.QueryParam("limit"); withLimit && l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return f, BadField("limit", fmt.Sprintf("must be an integer from 1 to 1000, got %q", l))
		}
		f.Limit = n
	}
	return f, nil
}

// CheckQuery refuses a query string (the request's raw query) whose
// parameters are not exactly what a route takes: one that does not decode
// (URL.Query drops such a pair: ?topic=a%zz would select every topic), a
// parameter not in known, one given more than once (?status=a&status=b,
// of which a handler would read only the first) or one given empty
// (?topic= from a script whose variable was unset, which must not widen a
// purge to every topic, nor fall back to a default). With no known
// parameter, any parameter is refused. The error is a BadField naming the
// parameter ("query" for one that does not decode; ErrBadRequest: a 400
// here); when several are at fault, the first in alphabetical order is
// named, so the answer is the same each time. A misspelt filter (?topics=,
// ?orderid=) must not select everything.
func CheckQuery(rawQuery string, known ...string) error {
	return checkQuery(rawQuery, nil, known)
}

// checkQuery is CheckQuery, except that the parameters in repeatable (of
// known) may be given more than once.
func checkQuery(rawQuery string, repeatable, known []string) error {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return BadField("query", fmt.Sprintf("the query string does not decode: %v", err))
	}
	for _, name := range slices.Sorted(maps.Keys(q)) {
		values := q[name]
		switch {
		case !slices.Contains(known, name) && len(known) == 0:
			return BadField(name, fmt.Sprintf("unknown query parameter %q (this route takes none)", name))
		case !slices.Contains(known, name):
			return BadField(name, fmt.Sprintf("unknown query parameter %q (known: %s)", name, strings.Join(known, ", ")))
		case len(values) > 1 && !slices.Contains(repeatable, name):
			return BadField(name, fmt.Sprintf("query parameter %s is given %d times; give it once", name, len(values)))
		case len(values) == 0 || slices.Contains(values, ""):
			return BadField(name, fmt.Sprintf("query parameter %s is empty; leave it out, or give it a value", name))
		}
	}
	return nil
}

// deadLetterID is the {id} of a route for one dead letter, which takes no
// query parameters.
func deadLetterID(c echo.Context) (int64, error) {
	if err := CheckQuery(c.QueryString()); err != nil {
		return 0, err
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, BadField("id", fmt.Sprintf("must be a positive integer, got %q", c.Param("id")))
	}
	return id, nil
}

func (d *dlqRoutes) list(c echo.Context) error {
	f, err := filter(c, true)
	if err != nil {
		return err
	}
	dls, err := d.b.DeadLetters().List(c.Request().Context(), f)
	if err != nil {
		return fmt.Errorf("list dead letters: %w", err)
	}
	out := make([]DeadLetter, 0, len(dls))
	for _, dl := range dls {
		out = append(out, dl.View())
	}
	return c.JSON(http.StatusOK, out)
}

func (d *dlqRoutes) get(c echo.Context) error {
	id, err := deadLetterID(c)
	if err != nil {
		return err
	}
	dl, err := d.b.DeadLetters().Get(c.Request().Context(), id)
	if err != nil {
		return err // the backends' errors name the dead letter
	}
	return c.JSON(http.StatusOK, dl.View())
}

func (d *dlqRoutes) replay(c echo.Context) error {
	id, err := deadLetterID(c)
	if err != nil {
		return err
	}
	if err := queue.ReplayDeadLetter(c.Request().Context(), d.b, id); err != nil {
		return err
	}
	d.logger.InfoContext(c.Request().Context(), "dead letter replayed", slog.Int64("dead_letter_id", id))
	return c.JSON(http.StatusOK, map[string]any{"replayed": 1, "id": id})
}

// selection is the filter of a replay or purge of many: ?topic= and
// ?group=, or the same in a JSON body {"topic", "group"} (the body wins);
// nothing selects everything.
func selection(c echo.Context) (backend.DeadLetterFilter, error) {
	f, err := filter(c, false)
	if err != nil {
		return f, err
	}
	// Raw values tell a field sent empty or null from one left out: as
	// with the query, an empty value or a null (a script's unset variable,
	// jq's answer for a missing key) must not widen a replay or a purge to
	// everything.
	var body struct {
		Topic json.RawMessage `json:"topic"`
		Group json.RawMessage `json:"group"`
	}
	if err := DecodeJSON(c, &body); err != nil {
		return f, err
	}
	topic, ok, err := selectionField("topic", body.Topic)
	if err != nil {
		return f, err
	}
	if ok {
		if err := backend.ValidateTopic(topic); err != nil {
			return f, BadField("topic", err.Error())
		}
		f.Topic = topic
	}
	group, ok, err := selectionField("group", body.Group)
	if err != nil {
		return f, err
	}
	if ok {
		f.ConsumerGroup = group
	}
	return f, nil
}

// selectionField reads field name of a selection's body: ok is false when
// it was left out. Sent empty, null or not as a string, it is a BadField.
func selectionField(name string, raw json.RawMessage) (value string, ok bool, err error) {
	if raw == nil {
		return "", false, nil
	}
	if string(raw) == "null" {
		return "", false, BadField(name, "is null; leave it out to select every "+name)
	}
	if err := json.Unmarshal(raw, &value); err != nil {
		return "", false, BadField(name, "must be a string")
	}
	if value == "" {
		return "", false, BadField(name, "is empty; leave it out to select every "+name)
	}
	return value, true, nil
}

// replayAll replays what selection selects.
func (d *dlqRoutes) replayAll(c echo.Context) error {
	f, err := selection(c)
	if err != nil {
		return err
	}
	n, err := queue.ReplayDeadLetters(c.Request().Context(), d.b, f)
	if err != nil {
		return fmt.Errorf("replayed %d dead letters, then: %w", n, err)
	}
	d.logger.InfoContext(c.Request().Context(), "dead letters replayed", slog.Int("count", n),
		slog.String("topic", f.Topic), slog.String("group", f.ConsumerGroup))
	return c.JSON(http.StatusOK, map[string]any{"replayed": n})
}

// purge deletes what selection selects.
func (d *dlqRoutes) purge(c echo.Context) error {
	f, err := selection(c)
	if err != nil {
		return err
	}
	n, err := d.b.DeadLetters().Purge(c.Request().Context(), f)
	if err != nil {
		return fmt.Errorf("purge dead letters: %w", err)
	}
	d.logger.InfoContext(c.Request().Context(), "dead letters purged", slog.Int("count", n),
		slog.String("topic", f.Topic), slog.String("group", f.ConsumerGroup))
	return c.JSON(http.StatusOK, map[string]any{"purged": n})
}

// stats takes no query parameter: a ?topic= would not filter them.
func (d *dlqRoutes) stats(c echo.Context) error {
	if err := CheckQuery(c.QueryString()); err != nil {
		return err
	}
	st, err := d.b.Inspector().Stats(c.Request().Context())
	if err != nil {
		return fmt.Errorf("queue stats: %w", err)
	}
	if st == nil {
		st = []backend.TopicStats{}
	}
	return c.JSON(http.StatusOK, st)
}
