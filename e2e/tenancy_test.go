package e2e

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
)

// operatorKey is the deployment's admin key (ARQ_ADMIN_KEY) of the
// tenancy tests' servers.
const operatorKey = "operator-secret"

// startTenanted starts a server with keys on, configured by env over
// that.
func startTenanted(t *testing.T, env map[string]string) *testserver.Server {
	t.Helper()
	e := map[string]string{"ARQ_ADMIN_KEY": operatorKey}
	for k, v := range env {
		e[k] = v
	}
	return testserver.Start(t, e)
}

// as sends requests with one credential (an API key, a session token, the
// operator's key; "" none).
type as struct {
	s   *testserver.Server
	key string
}

func (a as) do(method, path string, body any, headers ...string) testserver.Response {
	a.s.T().Helper()
	if a.key != "" {
		headers = append([]string{"Authorization", "Bearer " + a.key}, headers...)
	}
	return a.s.Do(method, path, body, headers...)
}

func (a as) must(status int, method, path string, body any, headers ...string) testserver.Response {
	a.s.T().Helper()
	return a.s.Must(status, a.do(method, path, body, headers...))
}

// all follows next_cursor (as after for the log, cursor for lists) from
// the first page and returns every item.
func (a as) all(path string) []map[string]any {
	a.s.T().Helper()
	param := "cursor"
	if strings.HasPrefix(path, "/v1/events") || strings.Contains(path, "/audit") {
		param = "after"
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	var items []map[string]any
	next := ""
	for range 100 {
		r := a.must(200, "GET", path+sep+param+"="+next, nil)
		items = append(items, r.Items()...)
		if next = r.Str("next_cursor"); next == "" {
			return items
		}
	}
	a.s.T().Fatalf("%s: more than 100 pages", path)
	return nil
}

// newTenant makes a tenant as the operator.
func newTenant(s *testserver.Server, id string) {
	as{s, operatorKey}.must(201, "POST", "/v1/admin/tenants", map[string]any{"id": id, "name": "Tenant " + id})
}

// newKey makes a key of tenant as the operator, narrowed to user unless
// that is "", and returns its secret and id.
func newKey(s *testserver.Server, tenant, user string, scopes ...string) (secret, id string) {
	s.T().Helper()
	body := map[string]any{"name": "key of " + tenant, "scopes": scopes, "tenant": tenant}
	if user != "" {
		body["user_id"] = user
	}
	r := as{s, operatorKey}.must(201, "POST", "/v1/admin/keys", body)
	if r.Str("tenant") != tenant || r.Str("user_id") != user {
		s.T().Fatalf("key made for tenant %s, user %q: %s", tenant, user, r.Body)
	}
	return r.Str("key"), r.Str("id")
}

// person is one user's data in a tenant: every text of theirs holds mark,
// so an answer that shows any of it to another caller is found out.
type person struct {
	mark                                  string
	user, ext, session, token             string
	userMsg, asstMsg, memory, snapshot    string
	asstSnapshot                          string
	streams                               []string // every stream of the user's audit
	event                                 string   // the user's first event
	sessionTitle, userName, memoryContent string
}

// populate registers a user with a key of a tenant, with a session, a
// user's and an assistant's message, a memory and a context snapshot, and
// waits for the snapshot the background pass records of the assistant's
// message.
func populate(t *testing.T, a as, mark string) person {
	t.Helper()
	p := person{mark: mark, ext: "ext-" + mark, userName: "Name " + mark, sessionTitle: "Title " + mark, memoryContent: "remembers " + mark + "mem"}
	p.user = a.must(201, "POST", "/v1/users", map[string]any{"external_id": p.ext, "name": p.userName}).Str("id")
	started := a.must(201, "POST", "/v1/users/"+p.user+"/sessions", map[string]any{"title": p.sessionTitle})
	p.session, p.token = started.Str("id"), started.Str("token")
	if !strings.HasPrefix(p.token, "arqs_") {
		t.Fatalf("session token %q", p.token)
	}
	r := a.must(201, "POST", "/v1/sessions/"+p.session+"/messages", map[string]any{"messages": []map[string]any{
		{"role": "user", "content": "said " + mark + "msg"}, {"role": "assistant", "content": "answered " + mark + "ans"}}})
	msgs, _ := r.JSON["messages"].([]any)
	if len(msgs) != 2 {
		t.Fatalf("append: %s", r.Body)
	}
	p.userMsg, p.asstMsg = msgs[0].(map[string]any)["id"].(string), msgs[1].(map[string]any)["id"].(string)
	p.memory = a.must(201, "POST", "/v1/users/"+p.user+"/memories", map[string]any{"type": "semantic", "content": p.memoryContent}).Str("id")
	p.snapshot = a.must(201, "POST", "/v1/sessions/"+p.session+"/context/snapshots", map[string]any{"max_tokens": 1000}).Str("id")
	testwait.Eventually(t, 30*time.Second, "the snapshot of "+mark+"'s assistant message", func() (bool, error) {
		r := a.do("GET", "/v1/messages/"+p.asstMsg+"/context", nil)
		p.asstSnapshot = r.Str("id")
		return r.Status == 200, nil
	})
	for _, e := range a.all("/v1/users/" + p.user + "/audit") {
		if p.event == "" {
			p.event, _ = e["event_id"].(string)
		}
		if id, _ := e["stream_id"].(string); !slices.Contains(p.streams, id) {
			p.streams = append(p.streams, id)
		}
	}
	return p
}

// A key narrowed to one user reaches that user's sessions, messages,
// memories and context, and nothing else of its tenant: another user's are
// not found, the routes over the whole tenant are forbidden. It cannot
// hold admin, nor name a user of another tenant or none.
func TestUserNarrowedKey(t *testing.T) {
	t.Parallel()
	s := startTenanted(t, nil)
	newTenant(s, "acme")
	newTenant(s, "other")
	full, _ := newKey(s, "acme", "", "read", "write")
	a := as{s, full}
	mine := populate(t, a, "zqnarrowmine")
	theirs := populate(t, a, "zqnarrowtheirs")
	elsewhere, _ := newKey(s, "other", "", "read", "write")
	foreign := populate(t, as{s, elsewhere}, "zqnarrowforeign")

	secret, _ := newKey(s, "acme", mine.user, "read", "write")
	k := as{s, secret}

	// Its own user: reads and writes answer as to a full key.
	k.must(200, "GET", "/v1/users/"+mine.user, nil)
	k.must(200, "PATCH", "/v1/users/"+mine.user, map[string]any{"name": "Renamed"})
	sid := k.must(201, "POST", "/v1/users/"+mine.user+"/sessions", map[string]any{"title": "mine"}).Str("id")
	k.must(200, "GET", "/v1/users/"+mine.user+"/sessions", nil)
	mid := k.must(201, "POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "hello"}).Str("id")
	k.must(200, "GET", "/v1/sessions/"+sid+"/messages", nil)
	k.must(200, "PATCH", "/v1/messages/"+mid, map[string]any{"content": "hello again"})
	k.must(200, "GET", "/v1/messages/"+mine.asstMsg+"/context", nil)
	mem := k.must(201, "POST", "/v1/users/"+mine.user+"/memories", map[string]any{"type": "semantic", "content": "likes ferns"}).Str("id")
	k.must(200, "PATCH", "/v1/memories/"+mem, map[string]any{"content": "likes ferns a lot"})
	k.must(200, "GET", "/v1/users/"+mine.user+"/memories", nil)
	if hits := k.must(200, "POST", "/v1/users/"+mine.user+"/memories/search", map[string]any{"query": "ferns"}); len(hits.Items()) != 1 {
		t.Fatalf("search of its own user's memories: %s", hits.Body)
	}
	k.must(200, "GET", "/v1/sessions/"+sid+"/context", nil)
	k.must(200, "POST", "/v1/sessions/"+mine.session+"/context", map[string]any{"max_tokens": 500})
	k.must(201, "POST", "/v1/sessions/"+mine.session+"/context/snapshots", map[string]any{"max_tokens": 500})
	k.must(200, "GET", "/v1/context-snapshots/"+mine.snapshot, nil)
	k.must(200, "GET", "/v1/users/"+mine.user+"/audit", nil)
	k.must(200, "GET", "/v1/streams/user-"+mine.user+"/verify", nil)
	k.must(200, "POST", "/v1/sessions/"+sid+"/close", nil)
	k.must(204, "DELETE", "/v1/memories/"+mem, nil)

	// Another user of the same tenant, and a user of another tenant, are
	// not found, reads and writes alike.
	for _, p := range []person{theirs, foreign} {
		for _, r := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/v1/users/" + p.user, nil},
			{"PATCH", "/v1/users/" + p.user, map[string]any{"name": "x"}},
			{"POST", "/v1/users/" + p.user + "/sessions", map[string]any{}},
			{"GET", "/v1/sessions/" + p.session, nil},
			{"POST", "/v1/sessions/" + p.session + "/messages", map[string]any{"role": "user", "content": "x"}},
			{"GET", "/v1/messages/" + p.userMsg, nil},
			{"GET", "/v1/memories/" + p.memory, nil},
			{"POST", "/v1/users/" + p.user + "/memories/search", map[string]any{"query": p.mark + "mem"}},
			{"GET", "/v1/sessions/" + p.session + "/context", nil},
			{"GET", "/v1/context-snapshots/" + p.snapshot, nil},
			{"DELETE", "/v1/memories/" + p.memory, nil},
		} {
			isProblem(t, k.do(r.method, r.path, r.body), 404, "")
		}
	}
	a.must(200, "GET", "/v1/memories/"+theirs.memory, nil) // still there

	// The routes over the whole tenant are forbidden.
	for _, r := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/users", nil},
		{"POST", "/v1/users", map[string]any{"external_id": "new", "name": "New"}},
		{"GET", "/v1/events", nil},
		{"GET", "/v1/events/stream", nil},
		{"GET", "/v1/stats", nil},
		{"POST", "/v1/sessions/validate", map[string]any{"token": mine.token}},
		{"GET", "/v1/admin/keys", nil},
		{"GET", "/metrics", nil},
	} {
		isProblem(t, k.do(r.method, r.path, r.body), 403, "")
	}

	// What a narrowed key may not be made with.
	op := as{s, operatorKey}
	isProblem(t, op.do("POST", "/v1/admin/keys", map[string]any{"name": "n", "scopes": []string{"read", "admin"}, "tenant": "acme", "user_id": mine.user}), 422, "scopes")
	isProblem(t, op.do("POST", "/v1/admin/keys", map[string]any{"name": "n", "scopes": []string{"read"}, "tenant": "acme", "user_id": foreign.user}), 422, "user_id")
	isProblem(t, op.do("POST", "/v1/admin/keys", map[string]any{"name": "n", "scopes": []string{"read"}, "tenant": "acme", "user_id": "01HZZZZZZZZZZZZZZZZZZZZZZZ"}), 422, "user_id")
	isProblem(t, op.do("POST", "/v1/admin/keys", map[string]any{"name": "n", "scopes": []string{"read"}, "tenant": "acme", "user_id": "nobody"}), 422, "user_id")
	// A tenant's admin key may make one for a user of its own tenant,
	// and for none of another's.
	tenantAdmin, _ := newKey(s, "acme", "", "admin")
	ta := as{s, tenantAdmin}
	if r := ta.must(201, "POST", "/v1/admin/keys", map[string]any{"name": "n", "scopes": []string{"read"}, "user_id": theirs.user}); r.Str("user_id") != theirs.user || r.Str("tenant") != "acme" {
		t.Fatalf("narrowed key made by the tenant's admin key: %s", r.Body)
	}
	isProblem(t, ta.do("POST", "/v1/admin/keys", map[string]any{"name": "n", "scopes": []string{"read"}, "user_id": foreign.user}), 422, "user_id")
}

// A session's token appends to and reads its session's messages and
// context, and reads the session; everything else is forbidden, another
// session is not found, and the token is refused once its session is
// closed or expired.
func TestSessionTokenIsACredential(t *testing.T) {
	t.Parallel()
	s := startTenanted(t, map[string]string{"ARQ_EXPIRY_INTERVAL": "100ms"})
	newTenant(s, "acme")
	full, _ := newKey(s, "acme", "", "read", "write")
	a := as{s, full}
	p := populate(t, a, "zqtokenowner")
	sibling := a.must(201, "POST", "/v1/users/"+p.user+"/sessions", map[string]any{}).Str("id") // same user, other session
	siblingMsg := a.must(201, "POST", "/v1/sessions/"+sibling+"/messages", map[string]any{"role": "user", "content": "elsewhere"}).Str("id")
	tok := as{s, p.token}

	got := tok.must(200, "GET", "/v1/sessions/"+p.session, nil)
	if got.Str("id") != p.session || got.Str("token") != "" {
		t.Fatalf("the session read with its token: %s", got.Body)
	}
	mid := tok.must(201, "POST", "/v1/sessions/"+p.session+"/messages", map[string]any{"role": "user", "content": "from the token"}).Str("id")
	if items := tok.must(200, "GET", "/v1/sessions/"+p.session+"/messages", nil).Items(); len(items) != 3 {
		t.Fatalf("messages read with the token: %v", items)
	}
	tok.must(200, "GET", "/v1/messages/"+mid, nil)
	if h := tok.must(200, "GET", "/v1/messages/"+mid+"/history", nil).Items(); len(h) != 1 || h[0]["actor"] != "session:"+p.session {
		t.Fatalf("the history of a message the token appended: %v", h)
	}
	tok.must(200, "GET", "/v1/messages/"+p.asstMsg+"/context", nil)
	tok.must(200, "GET", "/v1/sessions/"+p.session+"/context", nil)
	tok.must(200, "POST", "/v1/sessions/"+p.session+"/context", map[string]any{"max_tokens": 500})
	tok.must(200, "GET", "/v1/sessions/"+p.session+"/context/snapshots", nil)
	live := subscribe(s, t, "/v1/sessions/"+p.session+"/stream?after=0.0", "Authorization", "Bearer "+p.token)
	await(t, live, "the token's own message on its session's stream", func(ev sseEvent) bool { return dataField(ev, "content") == "from the token" })

	// Everything else is forbidden, its own user and session's other
	// routes too.
	for _, r := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/users/" + p.user, nil},
		{"GET", "/v1/users/" + p.user + "/memories", nil},
		{"GET", "/v1/users/" + p.user + "/sessions", nil},
		{"POST", "/v1/users/" + p.user + "/memories", map[string]any{"type": "semantic", "content": "x"}},
		{"GET", "/v1/memories/" + p.memory, nil},
		{"PATCH", "/v1/messages/" + mid, map[string]any{"content": "changed"}},
		{"DELETE", "/v1/messages/" + mid, nil},
		{"POST", "/v1/sessions/" + p.session + "/close", nil},
		{"POST", "/v1/sessions/" + p.session + "/extend", map[string]any{"ttl_seconds": 60}},
		{"POST", "/v1/sessions/" + p.session + "/context/snapshots", map[string]any{}},
		{"GET", "/v1/sessions/" + p.session + "/history", nil},
		{"GET", "/v1/context-snapshots/" + p.snapshot, nil},
		{"POST", "/v1/sessions/validate", map[string]any{"token": p.token}},
		{"GET", "/v1/users", nil},
		{"GET", "/v1/events", nil},
		{"GET", "/v1/stats", nil},
		{"GET", "/v1/admin/keys", nil},
	} {
		isProblem(t, tok.do(r.method, r.path, r.body), 403, "")
	}
	// Another session, of its own user, is not found.
	isProblem(t, tok.do("GET", "/v1/sessions/"+sibling, nil), 404, "")
	isProblem(t, tok.do("POST", "/v1/sessions/"+sibling+"/messages", map[string]any{"role": "user", "content": "x"}), 404, "")
	isProblem(t, tok.do("GET", "/v1/sessions/"+sibling+"/messages", nil), 404, "")
	isProblem(t, tok.do("GET", "/v1/messages/"+siblingMsg, nil), 404, "")
	if n := len(a.must(200, "GET", "/v1/sessions/"+sibling+"/messages", nil).Items()); n != 1 {
		t.Fatalf("the other session has %d messages, want 1", n)
	}

	// Closed with a key, the session's token opens nothing.
	a.must(200, "POST", "/v1/sessions/"+p.session+"/close", nil)
	isProblem(t, tok.do("GET", "/v1/sessions/"+p.session, nil), 401, "")
	isProblem(t, tok.do("POST", "/v1/sessions/"+p.session+"/messages", map[string]any{"role": "user", "content": "late"}), 401, "")

	// Past its expiry, neither.
	started := time.Now()
	brief := a.must(201, "POST", "/v1/users/"+p.user+"/sessions", map[string]any{"ttl_seconds": 2})
	short := as{s, brief.Str("token")}
	if r := short.do("GET", "/v1/sessions/"+brief.Str("id"), nil); r.Status != 200 && time.Since(started) < 2*time.Second {
		t.Fatalf("a token within its session's time to live: %d %s", r.Status, r.Body)
	}
	testwait.Eventually(t, 20*time.Second, "the token refused after its session's expiry", func() (bool, error) {
		return short.do("GET", "/v1/sessions/"+brief.Str("id"), nil).Status == 401, nil
	})
	if time.Since(started) < 2*time.Second {
		t.Fatalf("the token was refused %s after its session started, with 2s to live", time.Since(started))
	}
	isProblem(t, short.do("GET", "/v1/sessions/"+brief.Str("id")+"/messages", nil), 401, "")
}

// A key with the admin scope manages its own tenant's keys alone; the
// operator's key manages tenants and every tenant's keys.
func TestTenantAdminKeys(t *testing.T) {
	t.Parallel()
	s := startTenanted(t, nil)
	op := as{s, operatorKey}
	newTenant(s, "acme")
	newTenant(s, "globex")
	acmeAdmin, acmeAdminID := newKey(s, "acme", "", "admin")
	globexAdmin, globexAdminID := newKey(s, "globex", "", "admin")
	_, globexReaderID := newKey(s, "globex", "", "read")
	aa := as{s, acmeAdmin}

	// Its own tenant's keys: make (in its tenant, whatever it names
	// none), list, revoke.
	made := aa.must(201, "POST", "/v1/admin/keys", map[string]any{"name": "acme reader", "scopes": []string{"read"}})
	if made.Str("tenant") != "acme" || made.Str("key") == "" {
		t.Fatalf("a key made by a tenant's admin key: %s", made.Body)
	}
	as{s, made.Str("key")}.must(200, "GET", "/v1/users", nil)
	aa.must(201, "POST", "/v1/admin/keys", map[string]any{"name": "acme writer", "scopes": []string{"write"}, "tenant": "acme"})
	isProblem(t, aa.do("POST", "/v1/admin/keys", map[string]any{"name": "x", "scopes": []string{"read"}, "tenant": "globex"}), 404, "")
	listed := aa.must(200, "GET", "/v1/admin/keys", nil).Items()
	if len(listed) != 3 {
		t.Fatalf("acme's admin key lists %d keys, want its tenant's 3: %v", len(listed), listed)
	}
	for _, k := range listed {
		if k["tenant"] != "acme" {
			t.Fatalf("acme's admin key lists another tenant's key: %v", k)
		}
	}
	aa.must(204, "DELETE", "/v1/admin/keys/"+made.Str("id"), nil)
	isProblem(t, as{s, made.Str("key")}.do("GET", "/v1/users", nil), 401, "")
	// Another tenant's keys are unknown to it, and stay live.
	for _, id := range []string{globexAdminID, globexReaderID} {
		isProblem(t, aa.do("DELETE", "/v1/admin/keys/"+id, nil), 404, "")
	}
	if n := len(as{s, globexAdmin}.must(200, "GET", "/v1/admin/keys", nil).Items()); n != 2 {
		t.Fatalf("globex has %d keys after acme's attempts, want 2", n)
	}
	// The operator's routes are not its.
	for _, r := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/admin/tenants", nil},
		{"POST", "/v1/admin/tenants", map[string]any{"id": "mine", "name": "Mine"}},
		{"GET", "/v1/admin/tenants/acme", nil},
		{"PATCH", "/v1/admin/tenants/acme", map[string]any{"rate_limit": 1000}},
		{"POST", "/v1/admin/projections/users/rebuild", nil},
		{"GET", "/v1/admin/projections/users/rebuild", nil},
	} {
		isProblem(t, aa.do(r.method, r.path, r.body), 403, "")
	}
	// Its data requests act in its tenant.
	aa.must(201, "POST", "/v1/users", map[string]any{"external_id": "a1", "name": "A1"})
	if n := len(as{s, globexAdmin}.must(200, "GET", "/v1/users", nil).Items()); n != 0 {
		t.Fatalf("globex sees %d users, want 0", n)
	}

	// The operator lists every tenant's keys, each with its tenant.
	newKey(s, "default", "", "read")
	all := op.must(200, "GET", "/v1/admin/keys", nil).Items()
	byTenant := map[string]int{}
	for _, k := range all {
		tn, _ := k["tenant"].(string)
		byTenant[tn]++
	}
	if byTenant["acme"] != 2 || byTenant["globex"] != 2 || byTenant["default"] != 1 || len(all) != 5 {
		t.Fatalf("the operator's key list by tenant: %v", byTenant)
	}
	// ... and revokes any of them.
	op.must(204, "DELETE", "/v1/admin/keys/"+acmeAdminID, nil)
	isProblem(t, aa.do("GET", "/v1/admin/keys", nil), 401, "")
	isProblem(t, op.do("POST", "/v1/admin/keys", map[string]any{"name": "x", "scopes": []string{"read"}, "tenant": "initech"}), 422, "tenant")

	// Tenants: their ids are checked, and each is made once.
	for _, id := range []string{"", "Acme", "has space", "-lead", strings.Repeat("a", 64), "ünï"} {
		isProblem(t, op.do("POST", "/v1/admin/tenants", map[string]any{"id": id, "name": "N"}), 422, "id")
	}
	isProblem(t, op.do("POST", "/v1/admin/tenants", map[string]any{"id": "initech"}), 422, "name")
	isProblem(t, op.do("POST", "/v1/admin/tenants", map[string]any{"id": "initech", "name": "I", "rate_limit": -1}), 422, "rate_limit")
	isProblem(t, op.do("POST", "/v1/admin/tenants", map[string]any{"id": "acme", "name": "Again"}), 409, "")
	made = op.must(201, "POST", "/v1/admin/tenants", map[string]any{"id": "a_1-" + strings.Repeat("z", 59), "name": "Longest"})
	if made.Header.Get("Location") != "/v1/admin/tenants/"+made.Str("id") {
		t.Fatalf("Location of a new tenant: %q", made.Header.Get("Location"))
	}
	var ids []string
	for _, tn := range op.must(200, "GET", "/v1/admin/tenants", nil).Items() {
		ids = append(ids, tn["id"].(string))
	}
	if !slices.Equal(ids, []string{"a_1-" + strings.Repeat("z", 59), "acme", "default", "globex"}) {
		t.Fatalf("tenants: %v", ids)
	}
	isProblem(t, op.do("GET", "/v1/admin/tenants/initech", nil), 404, "")
	isProblem(t, op.do("PATCH", "/v1/admin/tenants/initech", map[string]any{"rate_limit": 5}), 404, "")
	isProblem(t, op.do("PATCH", "/v1/admin/tenants/acme", map[string]any{"rate_burst": -3}), 422, "rate_burst")
}

// A tenant's own rate limits hold for its keys alone, and a change holds
// from each key's next request, without a restart.
func checkTenantLimits(t *testing.T, s *testserver.Server) {
	t.Helper()
	op := as{s, operatorKey}
	op.must(201, "POST", "/v1/admin/tenants", map[string]any{"id": "slow", "name": "Slow", "rate_limit": 2, "rate_burst": 2})
	if tn := op.must(200, "GET", "/v1/admin/tenants/slow", nil); tn.Num("rate_limit") != 2 || tn.Num("rate_burst") != 2 {
		t.Fatalf("the tenant's limits: %s", tn.Body)
	}
	newTenant(s, "fast")
	slowKey, _ := newKey(s, "slow", "", "read")
	fastKey, _ := newKey(s, "fast", "", "read")
	slow, fast := as{s, slowKey}, as{s, fastKey}

	first := slow.must(200, "GET", "/v1/users", nil)
	if first.Header.Get("RateLimit-Limit") != "2" || first.Header.Get("RateLimit-Remaining") != "1" {
		t.Fatalf("RateLimit headers of the tenant's key: %v", first.Header)
	}
	isRateLimited(t, untilLimited(t, func() testserver.Response { return slow.do("GET", "/v1/users", nil) }, 1, 200), 2)
	// Another tenant's key has the deployment's limit (100 a second,
	// burst 200).
	for range 5 {
		if r := fast.must(200, "GET", "/v1/users", nil); r.Header.Get("RateLimit-Limit") != "200" {
			t.Fatalf("RateLimit headers of another tenant's key: %v", r.Header)
		}
	}

	// No limit: the key's next request goes through, without RateLimit
	// headers.
	op.must(200, "PATCH", "/v1/admin/tenants/slow", map[string]any{"rate_limit": 0})
	for range 5 {
		if r := slow.must(200, "GET", "/v1/users", nil); r.Header.Get("RateLimit-Limit") != "" {
			t.Fatalf("RateLimit headers without a limit: %v", r.Header)
		}
	}
	// A generous limit: the key's next request counts against it.
	op.must(200, "PATCH", "/v1/admin/tenants/slow", map[string]any{"rate_limit": 1000, "rate_burst": 1000})
	if r := slow.do("GET", "/v1/users", nil); r.Header.Get("RateLimit-Limit") != "1000" {
		t.Fatalf("the request after the limit was raised: %d %v", r.Status, r.Header)
	}
	// What the key sent before counts against the new limit too (its
	// bucket is carried over): once that has passed, the whole burst is
	// its.
	testwait.Eventually(t, 10*time.Second, "the raised burst whole", func() (bool, error) {
		r := slow.do("GET", "/v1/users", nil)
		return r.Status == 200 && r.Header.Get("RateLimit-Remaining") == "999", nil
	})
	// A strict one: the burst is 3 from the next request on, less the
	// slice the instance took under the raised limit and did not spend:
	// a tenth of a second of it, which at 1 a second is part of one
	// request.
	op.must(200, "PATCH", "/v1/admin/tenants/slow", map[string]any{"rate_limit": 1, "rate_burst": 3})
	isRateLimited(t, untilLimited(t, func() testserver.Response { return slow.do("GET", "/v1/users", nil) }, 2, 200), 3)
	fast.must(200, "GET", "/v1/users", nil)
	// Left out, the deployment's limit again.
	if tn := op.must(200, "PATCH", "/v1/admin/tenants/slow", map[string]any{}); tn.JSON["rate_limit"] != nil || tn.JSON["rate_burst"] != nil {
		t.Fatalf("limits left out: %s", tn.Body)
	}
	if r := slow.do("GET", "/v1/users", nil); r.Header.Get("RateLimit-Limit") != "200" {
		t.Fatalf("the request after the limit was reset: %d %v", r.Status, r.Header)
	}
}

func TestTenantRateLimits(t *testing.T) {
	t.Parallel()
	checkTenantLimits(t, startTenanted(t, nil))
}

// With Redis unreachable each instance holds a tenant's limits alone, and
// a change of them as soon.
func TestTenantRateLimitsWithoutRedis(t *testing.T) {
	t.Parallel()
	checkTenantLimits(t, startTenanted(t, map[string]string{"ARQ_REDIS_URL": "redis://127.0.0.1:" + strconv.Itoa(freePort(t)) + "/0"}))
}

// An external id is unique within a tenant: another tenant registers the
// same one, and each finds its own user by it. An Idempotency-Key is
// each caller's own.
func TestExternalIDIsUniquePerTenant(t *testing.T) {
	t.Parallel()
	s := startTenanted(t, nil)
	newTenant(s, "acme")
	newTenant(s, "globex")
	ka, _ := newKey(s, "acme", "", "read", "write")
	kg, _ := newKey(s, "globex", "", "read", "write")
	// The same request, with the same Idempotency-Key, in each tenant:
	// each is its own, none a replay of another tenant's answer.
	users := map[string]string{}
	for _, k := range []string{ka, kg, operatorKey} {
		r := as{s, k}.must(201, "POST", "/v1/users", map[string]any{"external_id": "customer-42", "name": "C"}, "Idempotency-Key", "register-42")
		if r.Header.Get("Idempotent-Replayed") != "" || slices.Contains(slices.Collect(maps.Values(users)), r.Str("id")) {
			t.Fatalf("another tenant's answer replayed: %v %s", r.Header, r.Body)
		}
		users[k] = r.Str("id")
	}
	isProblem(t, as{s, ka}.do("POST", "/v1/users", map[string]any{"external_id": "customer-42", "name": "Again"}), 409, "")
	for k, id := range users {
		found := as{s, k}.must(200, "GET", "/v1/users?external_id=customer-42", nil).Items()
		if len(found) != 1 || found[0]["id"] != id {
			t.Fatalf("the tenant's user by external id: %v, want %s", found, id)
		}
	}
	// Deleted in one tenant, it is free there again, and still taken in
	// the others.
	as{s, kg}.must(204, "DELETE", "/v1/users/"+users[kg], nil)
	as{s, kg}.must(201, "POST", "/v1/users", map[string]any{"external_id": "customer-42", "name": "C2"})
	isProblem(t, as{s, ka}.do("POST", "/v1/users", map[string]any{"external_id": "customer-42", "name": "Again"}), 409, "")
}

// The events the background workers append for a tenant's session (the
// snapshot of an assistant message, a summary, an expiry) record that
// tenant, as do the CLI's: they are in its feed and in no other.
func TestWorkerEventsRecordTheirTenant(t *testing.T) {
	t.Parallel()
	s := startTenanted(t, map[string]string{"ARQ_BACKGROUND_INTERVAL": "50ms", "ARQ_EXPIRY_INTERVAL": "50ms",
		"ARQ_SUMMARY_THRESHOLD_TOKENS": "30", "ARQ_SUMMARY_RECENT_TOKENS": "10"})
	newTenant(s, "acme")
	key, _ := newKey(s, "acme", "", "read", "write")
	a := as{s, key}
	p := populate(t, a, "zqworker") // waits for the assistant message's snapshot
	var batch []map[string]any
	for i := range 6 {
		batch = append(batch, map[string]any{"role": []string{"user", "assistant"}[i%2], "content": "a sentence of some length about ferns and moss and rain number " + strconv.Itoa(i)})
	}
	a.must(201, "POST", "/v1/sessions/"+p.session+"/messages", map[string]any{"messages": batch})
	brief := a.must(201, "POST", "/v1/users/"+p.user+"/sessions", map[string]any{"ttl_seconds": 1}).Str("id")
	if code, out, errs := runCLI(t, s.URL, "erase", "memory", p.memory); code != 0 {
		t.Fatalf("arq erase memory: %d %s %s", code, out, errs)
	}
	// Also the operator's own data, in tenant default.
	as{s, operatorKey}.must(201, "POST", "/v1/users", map[string]any{"external_id": "d", "name": "D"})

	want := map[string]string{ // event type → actor
		"context.snapshot_recorded": "system:snapshots", "session.summarized": "system:summaries",
		"session.expired": "system:expiry", "memory.erased": "cli",
	}
	var feed []map[string]any
	testwait.Eventually(t, 30*time.Second, "the workers' events in acme's feed", func() (bool, error) {
		feed = a.all("/v1/events")
		found := 0
		for typ, actor := range want {
			for _, e := range feed {
				if e["event_type"] == typ && e["metadata"].(map[string]any)["actor"] == actor {
					found++
					break
				}
			}
		}
		return found == len(want), nil
	})
	for _, e := range feed {
		if tn := e["metadata"].(map[string]any)["tenant"]; tn != "acme" {
			t.Fatalf("acme's feed has an event of tenant %v: %v", tn, e)
		}
	}
	operator := as{s, operatorKey}
	for _, e := range operator.all("/v1/events") {
		m := e["metadata"].(map[string]any)
		if m["tenant"] != "default" || m["actor"] != "admin" {
			t.Fatalf("the default tenant's feed has %v", e)
		}
	}
	// In the log itself: every event of the user and their sessions
	// records acme.
	var wrong int
	err := testdb.Pool(t, s.URL).QueryRow(context.Background(), `SELECT count(*) FROM events
		WHERE metadata->>'tenant' IS DISTINCT FROM 'acme' AND (stream_id LIKE '%'||$1 OR stream_id LIKE '%'||$2 OR stream_id LIKE '%'||$3
			OR data->>'user_id' = $1 OR data->>'session_id' = $2)`, p.user, p.session, brief).Scan(&wrong)
	if err != nil || wrong != 0 {
		t.Fatalf("%d events of acme's user recorded in another tenant (%v)", wrong, err)
	}
}
