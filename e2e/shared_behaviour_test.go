package e2e

import (
	"context"
	"fmt"
	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
	"strings"
	"testing"
	"time"

	"github.com/arq-memory/arq/api"
	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/projections/readmodel"
)

// The points of issue 3's "Behaviour every endpoint shares" that need the
// server's log or a failing dependency: a 500 without internals, panic
// recovery, the JSON access log, and the warning of open mode.

// isInternalProblem checks that r is the 500 problem that tells a client
// nothing of the failure behind it, none of the words in secrets.
func isInternalProblem(t *testing.T, r testserver.Response, secrets ...string) {
	t.Helper()
	isProblem(t, r, 500, "")
	if r.Str("type") != "https://arq.dev/problems/internal" || r.Str("title") != "Internal error" || r.Str("detail") != "internal error" {
		t.Fatalf("500 problem: %s", r.Body)
	}
	for k := range r.JSON {
		switch k {
		case "type", "title", "status", "detail", "instance", "request_id":
		default:
			t.Errorf("500 problem has a field %q: %s", k, r.Body)
		}
	}
	for _, s := range secrets {
		if strings.Contains(strings.ToLower(string(r.Body)), strings.ToLower(s)) {
			t.Errorf("500 problem gives away %q: %s", s, r.Body)
		}
	}
}

// A read whose query Postgres refuses (its table is gone) answers a 500
// problem that names no SQL, table or Postgres error; the error itself
// goes to the log, with the request's id.
func TestDatabaseFailureIsA500WithoutInternals(t *testing.T) {
	t.Parallel()
	s := testserver.StartLogged(t, nil, nil)
	s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "f", "name": "F"}))
	s.Must(200, s.Do("GET", "/v1/users", nil))

	pool := testdb.Pool(t, s.URL)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `ALTER TABLE users RENAME TO users_taken_away`); err != nil {
		t.Fatal(err)
	}
	r := s.Do("GET", "/v1/users", nil, "X-Request-ID", "db-failure-1")
	isInternalProblem(t, r, "relation", "users_taken_away", `\"users\"`, "SQLSTATE", "42P01", "select", "does not exist", "pgx", "postgres")
	id := r.Header.Get("X-Request-ID")
	if r.Str("request_id") != id || len(id) != 26 || r.Header.Get("X-Client-Request-ID") != "db-failure-1" {
		t.Fatalf("500 problem: %v %s", r.Header, r.Body)
	}
	// The cause is the missing table, and the log says so.
	testwait.Eventually(t, 10*time.Second, "the failure logged with its request id", func() (bool, error) {
		for _, l := range s.Where(t, map[string]any{"msg": "request failed", "request_id": id, "client_request_id": "db-failure-1", "level": "ERROR"}) {
			if err, _ := l["err"].(string); strings.Contains(err, "42P01") {
				return true, nil
			}
		}
		return false, nil
	})
	// Put back, the same read answers again.
	if _, err := pool.Exec(ctx, `ALTER TABLE users_taken_away RENAME TO users`); err != nil {
		t.Fatal(err)
	}
	if items := s.Must(200, s.Do("GET", "/v1/users", nil)).Items(); len(items) != 1 {
		t.Fatalf("users after the table came back: %v", items)
	}
}

// panickingEntities panics on reads of users by id, as a bug in a handler
// would.
type panickingEntities struct{ api.EntityReader }

func (p panickingEntities) Encoded(ctx context.Context, kind domain.Kind, tenant, id string) (readmodel.Encoded, error) {
	if kind == domain.KindUser {
		panic(fmt.Sprintf("secret-panic-value reading user %s", id))
	}
	return p.EntityReader.Encoded(ctx, kind, tenant, id)
}

// A handler that panics answers a 500 problem (not a dropped connection),
// the panic and its stack go to the log, and the server goes on serving,
// on the same connection too. The server is the real one; only its reader
// of entities by id panics.
func TestPanicInAHandlerIsRecovered(t *testing.T) {
	t.Parallel()
	s := testserver.StartLogged(t, nil, func(o *app.Options) {
		o.WrapEntities = func(e api.EntityReader) api.EntityReader { return panickingEntities{e} }
	})
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "p", "name": "P"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")

	r := s.Do("GET", "/v1/users/"+uid, nil, "X-Request-ID", "rec-1")
	isInternalProblem(t, r, "secret-panic-value", "panic", "goroutine", ".go:")
	id := r.Header.Get("X-Request-ID")
	if r.Str("request_id") != id || len(id) != 26 || r.Header.Get("X-Client-Request-ID") != "rec-1" {
		t.Fatalf("recovered answer: %v %s", r.Header, r.Body)
	}
	testwait.Eventually(t, 10*time.Second, "the panic logged with its stack", func() (bool, error) {
		for _, l := range s.Where(t, map[string]any{"msg": "panic", "request_id": id, "level": "ERROR"}) {
			p, _ := l["panic"].(string)
			stack, _ := l["stack"].(string)
			if strings.Contains(p, "secret-panic-value") && strings.Contains(stack, "panickingEntities") {
				return true, nil
			}
		}
		return false, nil
	})
	// The access log has the request too, with the status it answered.
	testwait.Eventually(t, 10*time.Second, "the access log line of the panicking request", func() (bool, error) {
		lines := s.Where(t, map[string]any{"msg": "request", "request_id": id, "client_request_id": "rec-1"})
		return len(lines) == 1 && lines[0]["status"] == float64(500), nil
	})
	// The server goes on: other reads, and the same one again.
	s.Must(200, s.Do("GET", "/v1/sessions/"+sid, nil))
	isInternalProblem(t, s.Do("GET", "/v1/users/"+uid, nil), "secret-panic-value")
}

// Every request writes one JSON access log line with its method, path,
// status, request id and duration.
func TestAccessLogIsOneJSONLinePerRequest(t *testing.T) {
	t.Parallel()
	s := testserver.StartLogged(t, nil, nil)
	// The server's id of each request, which it answers in X-Request-ID;
	// a client's X-Request-ID is logged apart, as client_request_id.
	post := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "l", "name": "L"}, "X-Request-ID", "log-post"))
	uid := post.Str("id")
	get := s.Must(200, s.Do("GET", "/v1/users/"+uid+"?version=1", nil, "X-Request-ID", "log-get"))
	notFound := s.Must(404, s.Do("GET", "/v1/nowhere", nil, "X-Request-ID", "log-404"))
	made := s.Must(200, s.Do("GET", "/healthz", nil)).Header.Get("X-Request-ID")
	if made == "" {
		t.Fatal("no request id echoed")
	}
	for _, want := range []struct {
		id, client, method, path string
		status                   float64
	}{
		{post.Header.Get("X-Request-ID"), "log-post", "POST", "/v1/users", 201},
		{get.Header.Get("X-Request-ID"), "log-get", "GET", "/v1/users/" + uid, 200},
		{notFound.Header.Get("X-Request-ID"), "log-404", "GET", "/v1/nowhere", 404},
		{made, "", "GET", "/healthz", 200},
	} {
		if len(want.id) != 26 {
			t.Fatalf("request id %q of %s is no ULID", want.id, want.path)
		}
		var lines []map[string]any
		testwait.Eventually(t, 10*time.Second, "access log line of "+want.id, func() (bool, error) {
			lines = s.Where(t, map[string]any{"msg": "request", "request_id": want.id})
			return len(lines) > 0, nil
		})
		if client, _ := lines[0]["client_request_id"].(string); client != want.client {
			t.Errorf("access log line of %s: client_request_id %q, want %q", want.id, client, want.client)
		}
		if len(lines) != 1 {
			t.Fatalf("%d access log lines for request %s: %v", len(lines), want.id, lines)
		}
		l := lines[0]
		d, isNum := l["duration_ms"].(float64)
		if l["level"] != "INFO" || l["method"] != want.method || l["path"] != want.path || l["status"] != want.status || !isNum || d < 0 || l["time"] == nil {
			t.Errorf("access log line of %s: %v; want %s %s %v with a duration", want.id, l, want.method, want.path, want.status)
		}
	}
}

// Without ARQ_ADMIN_KEY the server says at start, as a warning, that the
// API is open to every caller; with one, it does not.
func TestOpenModeIsWarnedAtStart(t *testing.T) {
	t.Parallel()
	warnings := func(s *testserver.Server) (n int) {
		for _, l := range s.Where(t, map[string]any{"level": "WARN"}) {
			if msg, _ := l["msg"].(string); strings.Contains(msg, "ARQ_ADMIN_KEY") && strings.Contains(msg, "OPEN") {
				n++
			}
		}
		return n
	}
	open := testserver.StartLogged(t, nil, nil)
	// Said before the server listens, once, however many requests come.
	if n := warnings(open); n != 1 {
		t.Fatalf("open mode: %d warnings at start, want 1; log:\n%s", n, open.Logs.String())
	}
	open.Must(200, open.Do("GET", "/v1/users", nil))
	open.Must(200, open.Do("GET", "/v1/users", nil))
	if n := warnings(open); n != 1 {
		t.Fatalf("open mode: %d warnings after two requests, want 1", n)
	}
	closed := testserver.StartLogged(t, map[string]string{"ARQ_ADMIN_KEY": "test-admin-key-0123456789"}, nil)
	closed.Must(401, closed.Do("GET", "/v1/users", nil))
	if n := warnings(closed); n != 0 {
		t.Fatalf("with an admin key: %d open-mode warnings", n)
	}
}
