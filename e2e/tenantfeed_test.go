package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
)

// readNDJSON reads the events of an NDJSON answer.
func readNDJSON(t *testing.T, r testserver.Response) []map[string]any {
	t.Helper()
	if r.Status != 200 || r.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("NDJSON feed: %d %s: %s", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("NDJSON line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

func eventIDs(events []map[string]any) []string {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i], _ = e["event_id"].(string)
	}
	return ids
}

// Each tenant's event feed (as JSON pages, as NDJSON, as Server-Sent
// Events from the start and then live), its users' audit and its stats
// hold its own events and counts: every one of them, and no other
// tenant's.
func TestTenantFeedsKeepApart(t *testing.T) {
	t.Parallel()
	s := startTenanted(t, nil)
	newTenant(s, "acme")
	newTenant(s, "globex")
	ka, _ := newKey(s, "acme", "", "read", "write")
	kg, _ := newKey(s, "globex", "", "read", "write")
	type tenantOf struct {
		id string
		a  as
		p  person
	}
	tenants := []tenantOf{
		{"acme", as{s, ka}, populate(t, as{s, ka}, "zqfeedacme")},
		{"globex", as{s, kg}, populate(t, as{s, kg}, "zqfeedglobex")},
		{"default", as{s, operatorKey}, populate(t, as{s, operatorKey}, "zqfeeddefault")}, // the operator's own data
	}
	pool := testdb.Pool(t, s.URL)
	// othersOf are the marks and ids of the other tenants' people.
	othersOf := func(i int) []string {
		var out []string
		for j, o := range tenants {
			if j != i {
				out = append(out, o.p.mark, o.p.user, o.p.session, o.p.userMsg, o.p.asstMsg, o.p.memory, o.p.snapshot, o.p.asstSnapshot)
			}
		}
		return out
	}
	checkFeed := func(i int, what string, events []map[string]any, want []string) {
		t.Helper()
		if got := eventIDs(events); !slices.Equal(got, want) {
			t.Fatalf("%s of %s: %d events %v, want %d %v", what, tenants[i].id, len(got), got, len(want), want)
		}
		raw, _ := json.Marshal(events)
		for _, sec := range othersOf(i) {
			if bytes.Contains(raw, []byte(sec)) {
				t.Fatalf("%s of %s shows %s of another tenant", what, tenants[i].id, sec)
			}
		}
		for _, e := range events {
			if m, _ := e["metadata"].(map[string]any); m["tenant"] != tenants[i].id {
				t.Fatalf("%s of %s: an event of tenant %v: %v", what, tenants[i].id, m["tenant"], e)
			}
		}
	}
	// ofTenant are the ids of the events the log records in tenant, in
	// the feed's order.
	ofTenant := func(tenant string) []string {
		rows, err := pool.Query(context.Background(), `SELECT event_id FROM events WHERE metadata->>'tenant' = $1 ORDER BY transaction_id, position`, tenant)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return ids
	}

	streams := make([]*collected, len(tenants))
	for i, tn := range tenants {
		want := ofTenant(tn.id)
		if len(want) < 8 {
			t.Fatalf("%s has %d events", tn.id, len(want))
		}
		checkFeed(i, "the JSON feed", tn.a.all("/v1/events?limit=3"), want)
		checkFeed(i, "the NDJSON feed", readNDJSON(t, tn.a.do("GET", "/v1/events", nil, "Accept", "application/x-ndjson")), want)
		checkFeed(i, "the user's audit", tn.a.all("/v1/users/"+tn.p.user+"/audit"), want)
		st := tn.a.must(200, "GET", "/v1/stats", nil).JSON["counts"].(map[string]any)
		if st["users"] != 1.0 || st["sessions"] != 1.0 || st["messages"] != 2.0 || st["memories"] != 1.0 || st["events"] != float64(len(want)) {
			t.Fatalf("stats of %s: %v, want 1 user, session and memory, 2 messages and %d events", tn.id, st, len(want))
		}
		// Filters naming another tenant's streams or users find nothing.
		for j, o := range tenants {
			if j == i {
				continue
			}
			if items := tn.a.must(200, "GET", "/v1/events?stream=user-"+o.p.user, nil).Items(); len(items) != 0 {
				t.Fatalf("%s's feed of %s's user stream: %v", tn.id, o.id, items)
			}
			if items := tn.a.must(200, "GET", "/v1/users?external_id="+o.p.ext, nil).Items(); len(items) != 0 {
				t.Fatalf("%s's users by %s's external id: %v", tn.id, o.id, items)
			}
		}
		streams[i] = collect(subscribe(s, t, "/v1/events/stream?after=0.0", "Authorization", "Bearer "+tn.a.key))
	}

	// Live: each tenant appends in turn, then each once more; each
	// stream, once it has its tenant's last event, holds that tenant's
	// whole feed and nothing else.
	for range 2 {
		for _, tn := range tenants {
			tn.a.must(201, "POST", "/v1/sessions/"+tn.p.session+"/messages", map[string]any{"role": "user", "content": "live " + tn.p.mark})
		}
	}
	for i, tn := range tenants {
		want := ofTenant(tn.id)
		testwait.Eventually(t, 20*time.Second, tn.id+"'s last event on its stream", func() (bool, error) {
			return slices.ContainsFunc(streams[i].events(), func(ev sseEvent) bool { return ev.data["event_id"] == want[len(want)-1] }), nil
		})
		var got []map[string]any
		for _, ev := range streams[i].events() {
			got = append(got, ev.data)
		}
		checkFeed(i, "the event stream", got, want)
	}
}
