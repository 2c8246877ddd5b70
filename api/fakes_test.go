package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/projections/readmodel"
	"github.com/arq-memory/arq/queries"
)

// fakeQueries answers entity reads and context windows from memory; any
// other read panics (the embedded nil interface), which the router's
// Recover turns into a 500 the test would see.
type fakeQueries struct {
	Queries
	users   map[string]readmodel.Encoded
	windows int
}

func (f *fakeQueries) Encoded(_ context.Context, kind domain.Kind, _, id string) (readmodel.Encoded, error) {
	e, ok := f.users[id]
	if kind != domain.KindUser || !ok {
		return readmodel.Encoded{}, fmt.Errorf("%w: %s %s", domain.ErrNotFound, kind, id)
	}
	return e, nil
}

func (f *fakeQueries) ContextWindow(_ context.Context, sessionID string, q queries.WindowQuery, _ time.Time) (queries.EncodedWindow, error) {
	f.windows++
	return queries.EncodedWindow{JSON: []byte(fmt.Sprintf(`{"session_id":%q,"max_tokens":%d}`, sessionID, q.Budget.MaxTokens)), Cache: "hit"}, nil
}

// defaultOwners says every entity is the default tenant's.
type defaultOwners struct{}

func (defaultOwners) Of(context.Context, string, string) (domain.Owner, error) {
	return domain.Owner{Tenant: domain.DefaultTenant}, nil
}

func (defaultOwners) OfStream(context.Context, string) (domain.Owner, error) {
	return domain.Owner{Tenant: domain.DefaultTenant}, nil
}

// serve runs one request through the API's router built on fakes alone:
// no database, no Redis.
func serve(t *testing.T, q Queries, method, target string) *httptest.ResponseRecorder {
	t.Helper()
	gin.SetMode(gin.ReleaseMode)
	h := New(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Resources: Resources{Queries: q}, Owners: defaultOwners{}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

// A read by id answers the query service's body with its version as
// ETag; an entity it does not know is a 404 problem.
func TestEntityReadWithFakes(t *testing.T) {
	q := &fakeQueries{users: map[string]readmodel.Encoded{"u1": {JSON: []byte(`{"id":"u1"}`), Version: 3, Cache: "miss"}}}

	rec := serve(t, q, http.MethodGet, "/v1/users/u1")
	if rec.Code != http.StatusOK || rec.Body.String() != `{"id":"u1"}` || rec.Header().Get("ETag") != `"3"` || rec.Header().Get("X-Arq-Cache") != "miss" {
		t.Fatalf("GET a user: %d %s, ETag %q, X-Arq-Cache %q", rec.Code, rec.Body, rec.Header().Get("ETag"), rec.Header().Get("X-Arq-Cache"))
	}

	rec = serve(t, q, http.MethodGet, "/v1/users/nobody")
	if rec.Code != http.StatusNotFound || rec.Header().Get("Content-Type") != "application/problem+json" ||
		!strings.Contains(rec.Body.String(), `"type":"`+problemBase+`not-found"`) {
		t.Fatalf("GET an unknown user: %d %s %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
}

// A context window is served as the query service encoded it, saying
// whether a cache answered; a budget that is wrong is a 422 and never
// reaches the query service.
func TestContextWindowWithFakes(t *testing.T) {
	q := &fakeQueries{}
	rec := serve(t, q, http.MethodGet, "/v1/sessions/s1/context?max_tokens=500")
	if rec.Code != http.StatusOK || rec.Body.String() != `{"session_id":"s1","max_tokens":500}` || rec.Header().Get("X-Arq-Cache") != "hit" {
		t.Fatalf("GET a context window: %d %s, X-Arq-Cache %q", rec.Code, rec.Body, rec.Header().Get("X-Arq-Cache"))
	}
	rec = serve(t, q, http.MethodGet, "/v1/sessions/s1/context?max_tokens=lots")
	if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), "max_tokens") {
		t.Fatalf("GET a context window of a wrong budget: %d %s", rec.Code, rec.Body)
	}
	if q.windows != 1 {
		t.Fatalf("the query service built %d windows, want 1", q.windows)
	}
}
