package ports

import (
	"errors"
	"fmt"
	"mime"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/pkg/jsonbody"
	"github.com/orderflow/orderflow/services/order/internal/app"
	"github.com/orderflow/orderflow/services/order/internal/domain"
)

// placeOrderCommand is the PlaceOrder of a request whose body is req.
func placeOrderCommand(req placeOrderRequest, key, requestID string) app.PlaceOrder {
	cmd := app.PlaceOrder{
		CustomerID:     req.CustomerID,
		Items:          make([]app.Line, len(req.Items)),
		IdempotencyKey: key,
		RequestID:      requestID,
	}
	for i, l := range req.Items {
		cmd.Items[i] = app.Line{SKU: l.SKU, Quantity: l.Quantity}
	}
	if a := req.ShippingAddress; a != nil {
		cmd.ShippingAddress = &domain.Address{
			Name: a.Name, Line1: a.Line1, Line2: a.Line2, City: a.City, PostalCode: a.PostalCode, Country: a.Country,
		}
	}
	return cmd
}

// quantityRangeError is err, an error of reading a placement's body, with
// an items[i].quantity too large or too small for an int (a
// *jsonbody.Error with OutOfRange; quantities are the body's only
// numbers) made the *domain.ValidationError the order's validation gives
// a quantity out of [1, MaxQuantity], in its words: "must be at most
// 1000, got 1e400", not int's range. Any other err is returned as it is.
func quantityRangeError(err error) error {
	var body *jsonbody.Error
	if !errors.As(err, &body) || body.OutOfRange == "" {
		return err
	}
	problem := fmt.Sprintf("must be at most %d, got %s", app.MaxQuantity, body.OutOfRange)
	if strings.HasPrefix(body.OutOfRange, "-") {
		problem = "must be positive, got " + body.OutOfRange
	}
	return &domain.ValidationError{Fields: []domain.FieldError{{Field: body.Field, Problem: problem}}}
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
