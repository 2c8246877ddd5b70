package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/eventstore"
)

// A command that gave up after its retries answers 503 busy with
// Retry-After, not 409 as a caller's conflict does; a conflict stays 409.
func TestBusyIsServiceUnavailable(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	for _, c := range []struct {
		err    error
		status int
		typ    string
		retry  string
	}{
		{fmt.Errorf("store memory: %w: other changes kept coming first", commands.ErrBusy), http.StatusServiceUnavailable, problemBase + "busy", "1"},
		{fmt.Errorf("append: %w", &eventstore.ConflictError{StreamID: "user-x", Current: 2}), http.StatusConflict, problemBase + "conflict", ""},
	} {
		r := gin.New()
		r.POST("/v1/users", func(g *gin.Context) { WriteError(g, c.err) })
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/users", nil))
		if rec.Code != c.status || rec.Header().Get("Retry-After") != c.retry || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%v: %d, Retry-After %q, %s; want %d, %q", c.err, rec.Code, rec.Header().Get("Retry-After"), rec.Header().Get("Content-Type"), c.status, c.retry)
		}
		if want := fmt.Sprintf(`"type":%q`, c.typ); !strings.Contains(rec.Body.String(), want) {
			t.Errorf("%v: body %s, want %s", c.err, rec.Body, want)
		}
	}
}
