package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/domain"
)

// BindJSON decodes the request's JSON body into dst: only
// application/json (415 otherwise); no unknown fields, names matching by
// case only included, and no key given twice in one object, metadata too
// (422 naming them; see strictKeys); malformed JSON or a body that is no
// object (null too) is 400, a value of the wrong type 422 naming its
// field, a body over the limit 413.
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
	// Decoding null into dst leaves it as it is, which would pass for an
	// empty object: a PATCH that changes nothing, a POST missing fields.
	if string(bytes.Trim(raw, " \t\r\n")) == "null" {
		return errorf(ErrBadJSON, "the body must be a JSON object")
	}
	if err := strictKeys(raw, reflect.TypeOf(dst)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // still: strictKeys passes what is not JSON
	if err := dec.Decode(dst); err != nil {
		return fieldError(err, raw)
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
	v := &domain.ValidationError{}
	// Not JSON: the decode that follows names the fault.
	walkText(raw, func(path, text string, _ bool) bool {
		if strings.IndexByte(text, 0) >= 0 {
			v.Add(path, "must not contain the NUL character (\\u0000)")
			return false
		}
		return true
	})
	return v.Err()
}

// walkText calls visit with the path and text of every object key (key
// true; the path is the key's own) and every string of the JSON document
// raw, in no set order; false for a key skips what it holds. It reports
// false when raw is not JSON.
func walkText(raw []byte, visit func(path, text string, key bool) bool) bool {
	var doc any
	if json.Unmarshal(raw, &doc) != nil {
		return false
	}
	var walk func(path string, x any)
	walk = func(path string, x any) {
		switch x := x.(type) {
		case string:
			visit(path, x, false)
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
				if visit(name, k, true) {
					walk(name, e)
				}
			}
		}
	}
	walk("", doc)
	return true
}

// readTimedOut reports whether reading the body ended at the server's
// read deadline (http.Server's ReadTimeout).
func readTimedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// fieldError is decodeError, but a value of the wrong type, or a time
// that is not RFC 3339 with a zone, is a 422 naming its field (found in
// raw for a time), as the API's other invalid fields are.
func fieldError(err error, raw []byte) error {
	var typ *json.UnmarshalTypeError
	var pt *time.ParseError
	switch {
	case errors.As(err, &typ) && typ.Field != "":
		v := &domain.ValidationError{}
		v.Add(jsonPath(typ.Field), "must be %s, not %s", jsonType(typ.Type), typ.Value)
		return v
	case errors.As(err, &pt):
		v := &domain.ValidationError{}
		const want = "must be a time in RFC 3339 with its zone, e.g. 2026-11-24T09:30:00Z"
		paths := pathsOf(raw, pt.Value)
		if len(paths) == 0 {
			paths = []string{"(a time)"}
		}
		for _, p := range paths {
			v.Add(p, want)
		}
		return v
	}
	return decodeError(err)
}

// jsonPath is a decoder's field path as the client wrote it: segments
// that are Go type names (a body decoded through its own UnmarshalJSON,
// such as one message or a batch of them) are left out; the API's field
// names are lower case.
func jsonPath(field string) string {
	var out []string
	for _, seg := range strings.Split(field, ".") {
		if strings.ToLower(seg) == seg {
			out = append(out, seg)
		}
	}
	return strings.Join(out, ".")
}

// jsonType names what a Go type takes in JSON.
func jsonType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeOf(time.Time{}):
		return "a time in RFC 3339"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Float64:
		return "a number"
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(jsonType(t.Elem()), "a "), "an ") + "s"
	case t.Kind() == reflect.Map || t.Kind() == reflect.Struct:
		return "an object"
	}
	return "a JSON " + t.Kind().String()
}

// pathsOf returns the paths of the strings in the JSON document raw whose
// text is value.
func pathsOf(raw []byte, value string) []string {
	var out []string
	walkText(raw, func(path, text string, key bool) bool {
		if !key && text == value {
			out = append(out, path)
		}
		return true
	})
	sort.Strings(out)
	return out
}

func decodeError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return errorf(ErrTooLarge, "the body is larger than %d bytes", tooLarge.Limit)
	case readTimedOut(err):
		return errorf(ErrRequestTimeout, "the body was not sent in time")
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
