package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/arq-memory/arq/internal/testserver"
)

// A context read or snapshot asking for more than ARQ_MAX_CONTEXT_TOKENS
// is 422 problem+json naming max_tokens and the ceiling, and takes no
// snapshot; the ceiling itself is served.
func TestContextMaxTokensCeiling(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, map[string]string{"ARQ_MAX_CONTEXT_TOKENS": "5000"})
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "c", "name": "C"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")
	for _, r := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/sessions/" + sid + "/context?max_tokens=5001", nil},
		{"GET", "/v1/sessions/" + sid + "/context?max_tokens=1000000&query=bees", nil},
		{"POST", "/v1/sessions/" + sid + "/context", map[string]any{"max_tokens": 5001}},
		{"POST", "/v1/sessions/" + sid + "/context/snapshots", map[string]any{"max_tokens": 5001}},
	} {
		got := s.Must(422, s.Do(r.method, r.path, r.body))
		if ct := got.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s %s: Content-Type %q", r.method, r.path, ct)
		}
		errs, _ := got.JSON["errors"].([]any)
		if len(errs) != 1 {
			t.Fatalf("%s %s: errors %v, want max_tokens alone", r.method, r.path, got.JSON["errors"])
		}
		e, _ := errs[0].(map[string]any)
		if e["field"] != "max_tokens" || !strings.Contains(fmt.Sprint(e["message"]), "5000") {
			t.Errorf("%s %s: %v, want max_tokens naming the ceiling 5000", r.method, r.path, e)
		}
	}
	// Another wrong field is named beside it.
	got := s.Must(422, s.Do("GET", "/v1/sessions/"+sid+"/context?max_tokens=6000&memory_share=2", nil))
	if errs, _ := got.JSON["errors"].([]any); len(errs) != 2 {
		t.Errorf("max_tokens over the ceiling and a wrong share: errors %v", got.JSON["errors"])
	}
	if items := s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/context/snapshots", nil)).Items(); len(items) != 0 {
		t.Errorf("a refused snapshot was taken: %v", items)
	}
	if w := windowOf(s, sid, "max_tokens=5000"); w.MaxTokens != 5000 {
		t.Errorf("window at the ceiling: max_tokens %d", w.MaxTokens)
	}
	s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/context/snapshots", map[string]any{"max_tokens": 5000}))
}

// A request body sent slower than ARQ_REQUEST_READ_TIMEOUT allows is cut
// (408, or the connection closed) soon after the timeout, and nothing is
// appended; an event stream open all the while, which has no body to
// read, is not cut and goes on delivering.
func TestSlowRequestBodyIsCut(t *testing.T) {
	t.Parallel()
	const readTimeout = time.Second
	s := testserver.Start(t, map[string]string{"ARQ_REQUEST_READ_TIMEOUT": readTimeout.String()})
	events := subscribe(s, t, "/v1/events/stream?type=user.registered")

	conn, err := net.Dial("tcp", strings.TrimPrefix(s.Base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"external_id":"slow","name":"Slow"}`
	body += strings.Repeat(" ", 200-len(body)) // 20s at the pace below
	start := time.Now()
	if _, err := fmt.Fprintf(conn, "POST /v1/users HTTP/1.1\r\nHost: arq\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < len(body); i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				return // cut
			}
		}
	}()
	const within = 8 * time.Second
	_ = conn.SetReadDeadline(start.Add(within))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	took := time.Since(start)
	if err == nil {
		t.Logf("cut after %v: %s", took, resp.Status)
	} else {
		t.Logf("cut after %v: %v", took, err)
	}
	switch {
	case err == nil && resp.StatusCode == http.StatusRequestTimeout:
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("408 with Content-Type %q", ct)
		}
	case err == nil:
		t.Fatalf("a slow body got %d, want 408 or the connection closed", resp.StatusCode)
	default:
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("a body dribbled for %v was not cut", took)
		}
	}
	if took < readTimeout || took > within {
		t.Errorf("cut after %v, want between %v and %v", took, readTimeout, within)
	}
	for _, u := range s.Must(200, s.Do("GET", "/v1/users", nil)).Items() {
		t.Errorf("a user was registered from a cut body: %v", u)
	}

	// The stream has been open longer than the read timeout by now.
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "after", "name": "After"})).Str("id")
	await(t, events, "an event after the read timeout", func(ev sseEvent) bool { return dataField(ev, "user_id") == uid })
}
