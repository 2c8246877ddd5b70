package api

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/domain"
)

// BindJSON decodes the request's JSON body into dst: only
// application/json (415 otherwise), no unknown fields (422 naming them),
// malformed JSON or a wrong type is 400, a body over the limit 413.
func BindJSON(c *gin.Context, dst any) error {
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || mt != "application/json" {
		return errorf(ErrUnsupportedMediaType, "send Content-Type: application/json")
	}
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if dec.More() {
		return errorf(ErrBadJSON, "unexpected data after the JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return errorf(ErrTooLarge, "the body is larger than %d bytes", tooLarge.Limit)
		}
		return errorf(ErrBadJSON, "unexpected data after the JSON value")
	}
	return nil
}

func decodeError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return errorf(ErrTooLarge, "the body is larger than %d bytes", tooLarge.Limit)
	case errors.Is(err, io.EOF):
		return errorf(ErrBadJSON, "the body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(ErrBadJSON, "the body ends in the middle of the JSON value")
	case errors.As(err, &syntax):
		return errorf(ErrBadJSON, "%s at byte %d", syntax.Error(), syntax.Offset)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return errorf(ErrBadJSON, "the body must be a JSON object")
		}
		return errorf(ErrBadJSON, "field %s must be %s, not %s", field, typ.Type.String(), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		v := &domain.ValidationError{}
		v.Add(strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "is not a field of this request")
		return v
	}
	return errorf(ErrBadJSON, "%v", err)
}
