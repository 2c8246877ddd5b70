package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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
	raw, err := io.ReadAll(c.Request.Body)
	if err != nil {
		return decodeError(err)
	}
	if err := nulFields(raw); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
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

// nulFields is a 422 naming every field whose name or text holds the NUL
// character (\u0000), which no text in Postgres can hold; nil when none
// does. Bodies without the escape are not parsed twice.
func nulFields(raw []byte) error {
	if !bytes.Contains(raw, []byte(`\u0000`)) {
		return nil
	}
	var doc any
	if json.Unmarshal(raw, &doc) != nil {
		return nil // the decode that follows names the fault
	}
	v := &domain.ValidationError{}
	var walk func(path string, x any)
	walk = func(path string, x any) {
		switch x := x.(type) {
		case string:
			if strings.IndexByte(x, 0) >= 0 {
				v.Add(path, "must not contain the NUL character (\\u0000)")
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		case map[string]any:
			for k, e := range x {
				name := k
				if path != "" {
					name = path + "." + k
				}
				if strings.IndexByte(k, 0) >= 0 {
					v.Add(name, "must not contain the NUL character (\\u0000)")
					continue
				}
				walk(name, e)
			}
		}
	}
	walk("", doc)
	return v.Err()
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
