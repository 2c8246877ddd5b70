package testserver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/arq-memory/arq/api"
)

// Validator checks answers against the OpenAPI document the server
// serves (api.Document): an answer whose status, headers or body the
// document does not describe is a drift, reported as an error. Every
// request the tests send through Server.Do is checked, and so is every
// answer the generated client receives through Server.Client.
type Validator struct {
	router routers.Router
}

// NewValidator is a Validator of answers against api.Document. The
// document's server is "/", the serving origin, so one Validator serves
// for any server's answers.
func NewValidator() (*Validator, error) {
	raw, err := api.Document()
	if err != nil {
		return nil, err
	}
	d, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		return nil, fmt.Errorf("load the OpenAPI document: %w", err)
	}
	r, err := gorillamux.NewRouter(d)
	if err != nil {
		return nil, fmt.Errorf("route the OpenAPI document: %w", err)
	}
	return &Validator{router: r}, nil
}

// sharedValidator is the one Validator of the tests' servers: loading and
// routing the document costs 40 ms (175 ms under -race), once per test
// binary rather than once per server. It holds nothing that changes.
var sharedValidator = sync.OnceValues(NewValidator)

// Check reports how the answer (status, header, body) to req strays from
// the document, or nil. Requests to routes the document does not list
// (and HEAD requests, answered as their GET without a body) are not
// checked; neither are bodies of streams (Server-Sent Events, NDJSON).
func (v *Validator) Check(req *http.Request, status int, header http.Header, body []byte) error {
	if req.Method == http.MethodHead {
		return nil
	}
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		// An API route the document does not list is a drift too; an
		// unknown path or method is the API's 404 or 405, and /mcp is
		// another protocol.
		if strings.HasPrefix(req.URL.Path, "/v1/") && status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			return fmt.Errorf("%s %s answered %d, and the OpenAPI document has no such operation", req.Method, req.URL.Path, status)
		}
		return nil
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}
	opts.WithCustomSchemaErrorFunc(func(err *openapi3.SchemaError) string {
		return fmt.Sprintf("at %s: %s", "/"+strings.Join(err.JSONPointer(), "/"), err.Reason)
	})
	mt, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	switch mt {
	case "application/json", "application/problem+json", "text/plain":
	default:
		// A stream, a page, a script: the document says only that it is
		// text, and the media type is checked.
		opts.ExcludeResponseBody = true
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                opts,
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s answered %d, which the OpenAPI document does not describe: %w\nbody: %s",
			req.Method, req.URL.Path, status, err, truncate(body))
	}
	return nil
}

func truncate(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "..."
	}
	return string(b)
}

// checking is an http.RoundTripper that checks every answer against the
// document, reporting strays to report.
type checking struct {
	next   http.RoundTripper
	v      *Validator
	report func(error)
}

func (c checking) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "text/event-stream" || mt == "application/x-ndjson" {
		// A stream is read as it comes: its status and headers are
		// checked, its body is the test's.
		if err := c.v.Check(req, resp.StatusCode, resp.Header, nil); err != nil {
			c.report(err)
		}
		return resp, nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read the answer: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := c.v.Check(req, resp.StatusCode, resp.Header, body); err != nil {
		c.report(err)
	}
	return resp, nil
}
