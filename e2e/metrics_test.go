package e2e

import (
	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metricValue returns the value of the sample whose name and labels are
// series (as the text format writes them), or -1 when there is none.
func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: value %q: %v", series, v, err)
			}
			return f
		}
	}
	return -1
}

// GET /metrics answers the process's metrics in the Prometheus text
// format: its requests by route template and status, where each
// projection stands beside the log's head, its projectors' batches and
// its Postgres pools.
func TestMetrics(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "m", "name": "M"})).Str("id")
	s.Must(200, s.Do("GET", "/v1/users/"+uid, nil))
	s.Must(200, s.Do("GET", "/v1/users/"+uid, nil))
	isProblem(t, s.Do("GET", "/v1/nowhere/"+uid, nil), 404, "")
	isProblem(t, s.Do("BREW", "/v1/users", nil), 405, "")

	scrape := func() string {
		r := s.Do("GET", "/metrics", nil)
		if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
			t.Fatalf("GET /metrics: %d %s", r.Status, r.Header.Get("Content-Type"))
		}
		return string(r.Body)
	}
	body := scrape()
	for series, want := range map[string]float64{
		`arq_http_requests_total{code="201",method="POST",route="/v1/users"}`:         1,
		`arq_http_requests_total{code="200",method="GET",route="/v1/users/:id"}`:      2,
		`arq_http_requests_total{code="404",method="GET",route="unmatched"}`:          1,
		`arq_http_requests_total{code="405",method="other",route="unmatched"}`:        1,
		`arq_http_request_duration_seconds_count{method="GET",route="/v1/users/:id"}`: 2,
		`arq_projection_stopped{projection="users"}`:                                  0,
		`arq_db_pool_max_connections{pool="projector"}`:                               float64(len(app.Projections()) + 2),
	} {
		if got := metricValue(t, body, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if got := metricValue(t, body, `arq_projection_events_total{projection="users"}`); got < 1 {
		t.Errorf("users projector applied %v events, want at least the registration", got)
	}
	if !regexp.MustCompile(`(?m)^go_goroutines \d+`).MatchString(body) {
		t.Error("no Go runtime metrics")
	}
	// Every projection reaches the head of the log (those that skip the
	// user's event too: their checkpoints move over every event).
	testwait.Eventually(t, 20*time.Second, "every projection at the head of the log", func() (bool, error) {
		body := scrape()
		head := metricValue(t, body, "arq_log_head_position")
		for _, p := range app.Projections() {
			if pos := metricValue(t, body, `arq_projection_position{projection="`+p.Name()+`"}`); pos != head || head < 1 {
				return false, nil
			}
		}
		return true, nil
	})
}

// With keys on, metrics need a key with the read scope, as reads do.
func TestMetricsNeedAKeyWhenKeysAreOn(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, map[string]string{"ARQ_ADMIN_KEY": "admin-secret"})
	isProblem(t, s.Do("GET", "/metrics", nil), 401, "")
	s.Key = "admin-secret"
	ro := s.Must(201, s.Do("POST", "/v1/admin/keys", map[string]any{"name": "prometheus", "scopes": []string{"read"}})).Str("key")
	wo := s.Must(201, s.Do("POST", "/v1/admin/keys", map[string]any{"name": "writer", "scopes": []string{"write"}})).Str("key")
	s.Key = wo
	isProblem(t, s.Do("GET", "/metrics", nil), 403, "")
	s.Key = ro
	s.Must(200, s.Do("GET", "/metrics", nil))
}
