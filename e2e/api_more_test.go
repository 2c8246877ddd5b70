package e2e

import (
	"errors"
	"fmt"
	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A query parameter the OpenAPI document does not list for the route is a
// 422 naming it, as an unknown body field is: a misspelt filter no longer
// answers as if no filter were given. The parameters the document lists
// still work, HEAD is checked as its GET, and the routes outside /v1
// (probes, metrics) take any query.
func TestUnknownQueryParameterIsRefused(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "ada", "name": "Ada"})).Str("id")
	s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "Ada prefers short answers", "tags": []string{"style"}, "metadata": map[string]any{"k": "v"}}))
	s.Must(201, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": "Ada keeps bees"}))
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"title": "t"})).Str("id")
	mid := s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "hello"})).Str("id")

	for _, c := range []struct{ path, field string }{
		{"/v1/users/" + uid + "/memories?tags=style", "tags"},
		{"/v1/users/" + uid + "/memories?tag=style&Tag=style", "Tag"},
		{"/v1/sessions/" + sid + "/messages?q=x", "q"},
		{"/v1/users/" + uid + "?verison=1", "verison"},
		{"/v1/users?externalid=ada", "externalid"},
		{"/v1/sessions/" + sid + "/context?max_token=10", "max_token"},
		{"/v1/events?limit=1&after=&typ=user.registered", "typ"},
	} {
		r := s.Do("GET", c.path, nil)
		isProblem(t, r, 422, c.field)
		errs := r.JSON["errors"].([]any)
		if len(errs) != 1 || errs[0].(map[string]any)["message"] != "unknown query parameter" {
			t.Errorf("GET %s: %s", c.path, r.Body)
		}
	}
	// A query string Go would read only in part (';' in a part, a bad
	// escape) is refused, not read in part.
	for _, path := range []string{"/v1/users/" + uid + "/memories?tags=style;", "/v1/sessions/" + sid + "/messages?limit=2;tags=x", "/v1/users?external_id=%zz"} {
		isProblem(t, s.Do("GET", path, nil), 400, "")
	}
	if r := s.Do("HEAD", "/v1/users/"+uid+"?verison=1", nil); r.Status != 422 {
		t.Errorf("HEAD with an unknown query parameter: %d, want 422", r.Status)
	}

	// What the document lists is accepted, the filters still filter.
	if n := len(s.Must(200, s.Do("GET", "/v1/users/"+uid+"/memories?tag=style", nil)).Items()); n != 1 {
		t.Errorf("tag=style: %d memories, want 1", n)
	}
	if n := len(s.Must(200, s.Do("GET", "/v1/users/"+uid+"/memories?metadata=k=v&type=semantic&limit=5", nil)).Items()); n != 1 {
		t.Errorf("metadata=k=v: %d memories, want 1", n)
	}
	s.Must(200, s.Do("GET", "/v1/users/"+uid+"?version=1", nil))
	s.Must(200, s.Do("HEAD", "/v1/users/"+uid+"?version=1", nil))
	s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/messages?limit=1&cursor=", nil))
	s.Must(200, s.Do("GET", "/v1/sessions/"+sid+"/context?max_tokens=100&query=x", nil))
	s.Must(204, s.Do("DELETE", "/v1/messages/"+mid+"?reason=typo", nil))

	// Outside /v1, and where no route answers, the query is not looked at.
	s.Must(200, s.Do("GET", "/healthz?probe=1", nil))
	s.Must(200, s.Do("GET", "/metrics?x=1", nil))
	s.Must(200, s.Do("GET", "/openapi.json?v=2", nil))
	isProblem(t, s.Do("GET", "/v1/nothing?x=1", nil), 404, "")
}

// An event stream whose client stops reading ends once a write has waited
// for the client longer than the stream write timeout, instead of holding
// its handler, blocked in a write, until the server shuts down. The client
// opens /v1/events/stream with a small receive buffer and reads nothing
// while events far larger than the socket buffers are appended; the
// stream's request is counted in the metrics when its handler returns.
func TestEventStreamOfAClientThatStopsReadingEnds(t *testing.T) {
	t.Parallel()
	s := testserver.StartLogged(t, nil, func(o *app.Options) { o.StreamWriteTimeout = 200 * time.Millisecond })
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "slow", "name": "Slow"})).Str("id")

	d := net.Dialer{Control: func(_, _ string, raw syscall.RawConn) error {
		var serr error
		err := raw.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	conn, err := d.Dial("tcp", strings.TrimPrefix(s.Base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET /v1/events/stream HTTP/1.1\r\nHost: arq\r\nAccept: text/event-stream\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The stream is open when the server has started sending it.
	head := make([]byte, 12)
	if _, err := io.ReadFull(conn, head); err != nil || string(head) != "HTTP/1.1 200" {
		t.Fatalf("stream answer %q: %v", head, err)
	}

	// About 100 KB an event, 8 MB in all: more than the server's send
	// buffer (4 MB at most by default) and the client's receive buffer.
	content := strings.Repeat("a slow reader holds nothing up ", 100<<10/31)
	for range 80 {
		s.Must(202, s.Do("POST", "/v1/users/"+uid+"/memories", map[string]any{"type": "semantic", "content": content}, "Prefer", "respond-async"))
	}
	streamsServed := func() (bool, error) {
		for line := range strings.Lines(string(s.Must(200, s.Do("GET", "/metrics", nil)).Body)) {
			if strings.HasPrefix(line, "arq_http_requests_total{") && strings.Contains(line, `route="/v1/events/stream"`) {
				return true, nil
			}
		}
		return false, nil
	}
	testwait.Eventually(t, 20*time.Second, "the stream of the client that reads nothing ends", streamsServed)
}
