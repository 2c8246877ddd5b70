package client

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
)

// Error makes a problem (RFC 9457) an error: its title, its detail and
// the fields it names.
func (p *Problem) Error() string {
	msg := fmt.Sprintf("%d %s", p.Status, p.Title)
	if p.Detail != nil && *p.Detail != "" {
		msg += ": " + *p.Detail
	}
	if p.Errors != nil {
		for _, e := range *p.Errors {
			msg += fmt.Sprintf("; %s %s", e.Field, e.Message)
		}
	}
	return msg
}

// Check returns the problem an answer carries as an error (*Problem), or
// nil for an answer that is no error. Every generated ...Response has the
// two arguments: Check(r.HTTPResponse, r.Body). An error answer without a
// problem body (from a proxy, say) is a *Problem made from its status.
func Check(resp *http.Response, body []byte) error {
	if resp == nil {
		return fmt.Errorf("no answer")
	}
	if resp.StatusCode < 400 {
		return nil
	}
	p := &Problem{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode), Type: "about:blank"}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/problem+json" {
		if err := json.Unmarshal(body, p); err != nil {
			return fmt.Errorf("decode the problem of a %d answer: %w", resp.StatusCode, err)
		}
	}
	return p
}
