package ports

import (
	"fmt"
	"mime"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/services/order/internal/app"
	"github.com/orderflow/orderflow/services/order/internal/domain"
)

// jsonInteger is a member the OpenAPI document types as integer, kept as
// sent: JSON Schema counts any number without a fractional part as an
// integer (2, 2.0, 0.2e1), where encoding/json's int takes only the
// first. The body's reader (decodeBody) takes it as any JSON value;
// integer reads it.
type jsonInteger []byte

// UnmarshalJSON keeps b, null included.
func (n *jsonInteger) UnmarshalJSON(b []byte) error {
	*n = append((*n)[:0], b...)
	return nil
}

// integer reads n, the member field of a request: absent or null is 0, as
// a missing member (the order's validation refuses it); a value of another
// JSON type, or a number with a fractional part, is a malformedError as
// encoding/json words it; an integer beyond int64 a *domain.ValidationError
// saying it is out of [1, max].
func (n jsonInteger) integer(field string, max int) (int, error) {
	s := string(n)
	if s == "" || s == "null" {
		return 0, nil
	}
	typ := ""
	switch s[0] {
	case '"':
		typ = "string"
	case 't', 'f':
		typ = "bool"
	case '[':
		typ = "array"
	case '{':
		typ = "object"
	}
	if typ != "" {
		return 0, &malformedError{Field: field, Detail: "must be of type integer, got " + typ}
	}
	v, isInt, fits := parseJSONInteger(s)
	if fits && int64(int(v)) != v { // an int of 32 bits
		fits = false
	}
	switch {
	case !isInt:
		return 0, &malformedError{Field: field, Detail: "must be of type integer, got number " + s}
	case !fits && s[0] == '-':
		return 0, &domain.ValidationError{Fields: []domain.FieldError{{Field: field, Problem: "must be positive, got " + s}}}
	case !fits:
		return 0, &domain.ValidationError{Fields: []domain.FieldError{{Field: field, Problem: fmt.Sprintf("must be at most %d, got %s", max, s)}}}
	}
	return int(v), nil
}

// parseJSONInteger reads s, a number in JSON's syntax, exactly: isInt
// when it has no fractional part, and then v, its value, when it fits in
// an int64 (fits). Exponents of any size are read without building the
// number they spell.
func parseJSONInteger(s string) (v int64, isInt, fits bool) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	mantissa, exp := s, ""
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mantissa, exp = s[:i], s[i+1:]
	}
	whole, frac, _ := strings.Cut(mantissa, ".")
	digits := strings.TrimLeft(whole+frac, "0")
	if digits == "" {
		return 0, true, true // zero, however written
	}
	// The value is digits × 10^shift, digits without trailing zeros.
	trimmed := strings.TrimRight(digits, "0")
	shift := int64(len(digits)-len(trimmed)) - int64(len(frac))
	digits = trimmed
	expNeg := strings.HasPrefix(exp, "-")
	exp = strings.TrimLeft(strings.TrimLeft(exp, "+-"), "0")
	if len(exp) > 9 { // beyond any shift the digits of a body could undo
		return 0, !expNeg, false
	}
	if exp != "" {
		e, _ := strconv.ParseInt(exp, 10, 64) // at most 9 digits
		if expNeg {
			e = -e
		}
		shift += e
	}
	if shift < 0 {
		return 0, false, false
	}
	if int64(len(digits))+shift > 19 { // more digits than any int64
		return 0, true, false
	}
	text := digits + strings.Repeat("0", int(shift))
	if neg {
		text = "-" + text
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, true, false
	}
	return v, true, true
}

// placeOrderCommand is the PlaceOrder of a request whose body is req.
func placeOrderCommand(req placeOrderRequest, key, requestID string) (app.PlaceOrder, error) {
	cmd := app.PlaceOrder{
		CustomerID:     req.CustomerID,
		Items:          make([]app.Line, len(req.Items)),
		IdempotencyKey: key,
		RequestID:      requestID,
	}
	for i, l := range req.Items {
		q, err := l.Quantity.integer(fmt.Sprintf("items[%d].quantity", i), app.MaxQuantity)
		if err != nil {
			return app.PlaceOrder{}, err
		}
		cmd.Items[i] = app.Line{SKU: l.SKU, Quantity: q}
	}
	if a := req.ShippingAddress; a != nil {
		cmd.ShippingAddress = &domain.Address{
			Name: a.Name, Line1: a.Line1, Line2: a.Line2, City: a.City, PostalCode: a.PostalCode, Country: a.Country,
		}
	}
	return cmd, nil
}

// upperASCII is s with its ASCII letters in upper case, and nothing else
// changed: ?status= takes a status in any case, as the OpenAPI document's
// pattern says, where strings.ToUpper would also read "ſ" as S.
func upperASCII(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, s)
}

// unsupportedMediaTypeError is a request body the API cannot read as it
// is sent: 415.
type unsupportedMediaTypeError struct{ Detail string }

func (e *unsupportedMediaTypeError) Error() string { return "unsupported media type: " + e.Detail }

// checkBodyEncoding refuses a request body that is not JSON in UTF-8 as
// it is sent: one with a content coding (gzip: the API reads bodies as
// they come), answered with Accept-Encoding: identity (RFC 9110
// §15.5.16), or whose Content-Type names a charset other than UTF-8 (or
// US-ASCII, a part of it). The media type itself is not checked: bodies
// are read as JSON whatever it says, so that curl -d works.
func checkBodyEncoding(c echo.Context) error {
	h := c.Request().Header
	for _, v := range h.Values(echo.HeaderContentEncoding) {
		for _, coding := range strings.Split(v, ",") {
			coding = strings.TrimSpace(coding)
			if coding != "" && !strings.EqualFold(coding, "identity") {
				c.Response().Header().Set(echo.HeaderAcceptEncoding, "identity")
				return &unsupportedMediaTypeError{Detail: fmt.Sprintf("the body is sent with Content-Encoding %s; send it as it is, without a content coding", coding)}
			}
		}
	}
	if ct := h.Get(echo.HeaderContentType); ct != "" {
		_, params, err := mime.ParseMediaType(ct)
		cs, ok := params["charset"]
		if err == nil && ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "us-ascii") {
			return &unsupportedMediaTypeError{Detail: fmt.Sprintf("the body is sent in charset %s; send JSON in UTF-8", cs)}
		}
	}
	return nil
}
