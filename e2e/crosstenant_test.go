package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
)

// apiOp is one operation of the API's OpenAPI document.
type apiOp struct {
	method, path string
	// body names the request body's schema; "" for none.
	body string
	// success are the documented 2xx statuses.
	success []int
}

func (o apiOp) String() string { return o.method + " " + o.path }

// documented reads every operation of GET /openapi.json, in the order one
// run through them can take: the operations that end something (close,
// delete, erase) after the rest, a user's own end last.
func documented(t *testing.T, s *testserver.Server) []apiOp {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]struct {
			RequestBody *struct {
				Content map[string]struct {
					Schema struct {
						Ref string `json:"$ref"`
					} `json:"schema"`
				} `json:"content"`
			} `json:"requestBody"`
			Responses map[string]any `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(as{s, ""}.must(200, "GET", "/openapi.json", nil).Body, &doc); err != nil {
		t.Fatal(err)
	}
	var ops []apiOp
	for path, item := range doc.Paths {
		for method, o := range item {
			op := apiOp{method: strings.ToUpper(method), path: path}
			if o.RequestBody != nil {
				ref := o.RequestBody.Content["application/json"].Schema.Ref
				if ref == "" {
					t.Fatalf("%s: a request body that is not a JSON schema of the document", op)
				}
				op.body = ref[strings.LastIndex(ref, "/")+1:]
			}
			for code := range o.Responses {
				if n, err := strconv.Atoi(code); err == nil && n >= 200 && n < 300 {
					op.success = append(op.success, n)
				}
			}
			if len(op.success) == 0 {
				t.Fatalf("%s documents no success", op)
			}
			ops = append(ops, op)
		}
	}
	if len(ops) < 50 {
		t.Fatalf("the document has %d operations", len(ops))
	}
	phase := func(o apiOp) int {
		switch {
		case strings.HasSuffix(o.path, "/erase"):
			return 3
		case o.method == "DELETE" && strings.HasPrefix(o.path, "/v1/users/"):
			return 2
		case o.method == "DELETE" || strings.HasSuffix(o.path, "/close"):
			return 1
		}
		return 0
	}
	rank := map[string]int{"POST": 0, "PUT": 1, "PATCH": 2, "GET": 3, "DELETE": 4}
	sort.Slice(ops, func(i, j int) bool {
		a, b := ops[i], ops[j]
		if phase(a) != phase(b) {
			return phase(a) < phase(b)
		}
		if a.path != b.path {
			return a.path < b.path
		}
		return rank[a.method] < rank[b.method]
	})
	return ops
}

// routeClass is what the README promises of a route to a caller outside
// the tenant, user or session whose ids fill it.
type routeClass int

const (
	// publicRoute answers anyone, without a key.
	publicRoute routeClass = iota
	// operatorRoute is for the deployment's admin key alone: 403 to
	// every other.
	operatorRoute
	// keysRoute manages a tenant's keys: the admin scope, for its own
	// tenant's alone (another tenant's are 404), else 403.
	keysRoute
	// entityRoute names an entity in its path: 404 to a caller that may
	// not reach it, exactly as an id that names nothing; to a session's
	// token, 403 unless the route is one of sessionTokenRoutes.
	entityRoute
	// tenantRoute acts on the caller's own tenant as a whole: 403 to a
	// narrowed key or a session's token.
	tenantRoute
	// logRoute serves the log's signed checkpoints and consistency
	// proofs, hashes of the whole log and no tenant's data: to every key,
	// narrowed too; 403 to a session's token.
	logRoute
)

// sessionTokenRoutes are the routes a session's token may take (README,
// "Tenants, narrowed keys and session tokens"): append to and read its
// session's messages, their history and context, its stream, read its
// context and snapshots, and the session itself.
var sessionTokenRoutes = []string{
	"GET /v1/sessions/{id}",
	"GET /v1/sessions/{id}/messages", "POST /v1/sessions/{id}/messages",
	"GET /v1/sessions/{id}/stream",
	"GET /v1/messages/{id}", "GET /v1/messages/{id}/history", "GET /v1/messages/{id}/context",
	"GET /v1/sessions/{id}/context", "POST /v1/sessions/{id}/context",
	"GET /v1/sessions/{id}/context/snapshots",
}

func classify(t *testing.T, o apiOp) routeClass {
	switch {
	case slices.Contains([]string{"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/redoc.standalone.js"}, o.path):
		return publicRoute
	case strings.HasPrefix(o.path, "/v1/admin/tenants"), strings.HasPrefix(o.path, "/v1/admin/projections/"):
		return operatorRoute
	case strings.HasPrefix(o.path, "/v1/admin/keys"):
		return keysRoute
	case strings.HasPrefix(o.path, "/v1/admin/"):
		t.Fatalf("%s: an admin route this test does not know: is it the operator's, or a tenant's?", o)
	case strings.HasPrefix(o.path, "/v1/log/"):
		return logRoute
	case strings.Contains(o.path, "{"):
		return entityRoute
	}
	return tenantRoute
}

// targets are the ids of one tenant a run of the operations fills their
// paths and bodies with.
type targets struct {
	person
	// tenant is the people's, which a key is made for; managed the one
	// whose limits {tenant} routes set.
	tenant, managed, keyID, projection string
	// checkpoint is the size of a signed checkpoint of the log.
	checkpoint string
}

// fill returns the paths of o on t's ids: one for each id of the kind
// its parameter takes (a message of each role, each snapshot, each of the
// user's streams).
func fill(tt *testing.T, o apiOp, t targets) []string {
	tt.Helper()
	start := strings.Index(o.path, "{")
	if start < 0 {
		return []string{o.path}
	}
	end := strings.Index(o.path, "}")
	if strings.Contains(o.path[end:], "{") {
		tt.Fatalf("%s: more than one parameter; fill each", o)
	}
	param := o.path[start+1 : end]
	first, _, _ := strings.Cut(strings.TrimPrefix(o.path, "/v1/"), "/")
	var ids []string
	switch {
	case param == "stream":
		ids = t.streams
	case param == "tenant":
		ids = []string{t.managed}
	case param == "name" && strings.HasPrefix(o.path, "/v1/admin/projections/"):
		ids = []string{t.projection}
	case param == "size":
		ids = []string{t.checkpoint}
	case param == "id" && strings.HasPrefix(o.path, "/v1/admin/keys/"):
		ids = []string{t.keyID}
	case param == "id":
		ids = map[string][]string{
			"users": {t.user}, "sessions": {t.session}, "messages": {t.asstMsg, t.userMsg},
			"memories": {t.memory}, "context-snapshots": {t.snapshot, t.asstSnapshot}, "events": {t.event},
		}[first]
	}
	if len(ids) == 0 {
		tt.Fatalf("%s: no id for {%s} under /v1/%s: add one to fill", o, param, first)
	}
	var paths []string
	for _, id := range ids {
		paths = append(paths, o.path[:start]+id+o.path[end+1:])
	}
	return paths
}

// bodyFor is a body of each request schema, such that the operation acts
// when its caller may: an operation with a schema not here fails the test.
func bodyFor(tt *testing.T, o apiOp, t targets, n int) any {
	tt.Helper()
	probe := "probe-" + strconv.Itoa(n)
	bodies := map[string]any{
		"RegisterUser":    map[string]any{"external_id": probe, "name": "Probe"},
		"UpdateUser":      map[string]any{"name": "Renamed by " + probe},
		"StartSession":    map[string]any{"title": probe},
		"ExtendSession":   map[string]any{"ttl_seconds": 86400},
		"ValidateSession": map[string]any{"token": t.token},
		"AppendMessages":  map[string]any{"role": "user", "content": "appended by " + probe},
		"EditMessage":     map[string]any{"content": "edited by " + probe},
		"StoreMemory":     map[string]any{"type": "semantic", "content": "stored by " + probe},
		"SearchMemories":  map[string]any{"query": t.mark + "mem"},
		"UpdateMemory":    map[string]any{"content": "updated by " + probe, "importance": 0.9},
		"WindowRequest":   map[string]any{"max_tokens": 1000},
		"CreateKey":       map[string]any{"name": probe, "scopes": []string{"read", "write"}, "tenant": t.tenant, "user_id": t.user},
		"CreateTenant":    map[string]any{"id": probe, "name": "Probe"},
		"TenantLimits":    map[string]any{"rate_limit": 1, "rate_burst": 1},
	}
	if o.body == "" {
		return nil
	}
	b, ok := bodies[o.body]
	if !ok {
		tt.Fatalf("%s: no body of schema %s: add one to bodyFor", o, o.body)
	}
	return b
}

// send sends one request with key ("" none). The answer of an event
// stream is read up to its headers (what it streams is
// TestTenantFeedsKeepApart's).
func send(t *testing.T, s *testserver.Server, key, method, path string, body any) testserver.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.Base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	r := testserver.Response{Status: resp.StatusCode, Header: resp.Header}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return r
	}
	if r.Body, err = io.ReadAll(resp.Body); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	_ = json.Unmarshal(r.Body, &r.JSON)
	return r
}

// strings of a decoded JSON value, every one.
func stringsOf(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case map[string]any:
		var out []string
		for _, x := range v {
			out = append(out, stringsOf(x)...)
		}
		return out
	case []any:
		var out []string
		for _, x := range v {
			out = append(out, stringsOf(x)...)
		}
		return out
	}
	return nil
}

// leaks returns the secrets an answer shows: in its headers or body, but
// for what a problem's instance and detail echo of the request (its path
// and the strings of its body).
func leaks(r testserver.Response, path string, body any, secrets []string) []string {
	var b []byte
	if r.JSON != nil {
		echo := append(strings.Split(path, "/"), stringsOf(body)...)
		sort.Slice(echo, func(i, j int) bool { return len(echo[i]) > len(echo[j]) })
		shown := map[string]any{}
		for k, v := range r.JSON {
			if s, ok := v.(string); ok && (k == "instance" || k == "detail") {
				for _, e := range echo {
					if e != "" {
						s = strings.ReplaceAll(s, e, "")
					}
				}
				v = s
			}
			shown[k] = v
		}
		b, _ = json.Marshal(shown)
	} else {
		b = r.Body
	}
	var headers strings.Builder
	for k, vs := range r.Header {
		headers.WriteString(k + ": " + strings.Join(vs, ", ") + "\n")
	}
	var found []string
	for _, s := range secrets {
		if bytes.Contains(b, []byte(s)) || strings.Contains(headers.String(), s) {
			found = append(found, s)
		}
	}
	return found
}

// attacker is a caller outside what the operations' ids name.
type attacker struct {
	name, key string
	// admin: it holds the admin scope; full: it reaches a whole tenant
	// (another); session: it is a session's token.
	admin, full, session bool
	// own are its own ids, which its answers may name.
	own []string
}

// expect is the status the README promises attacker of o, on another's
// ids; 0 for o's documented success (a route over the caller's own
// tenant).
func (a attacker) expect(t *testing.T, o apiOp) int {
	switch classify(t, o) {
	case publicRoute:
		return 200
	case operatorRoute:
		return 403
	case keysRoute:
		switch {
		case !a.admin:
			return 403
		case o.method == "GET" && !strings.Contains(o.path, "{"):
			return 0 // its own tenant's keys
		}
		return 404 // another tenant's key, or a key for another tenant (the body's)
	case entityRoute:
		if a.session && !slices.Contains(sessionTokenRoutes, o.String()) {
			return 403
		}
		return 404
	case logRoute:
		if a.session {
			return 403
		}
		return 0
	}
	switch {
	case !a.full:
		return 403
	case o.String() == "POST /v1/sessions/validate":
		return 401 // the body's token opens no session of the caller's tenant
	}
	return 0
}

// Acceptance of tenancy, generated from the OpenAPI document: every
// operation, filled with the ids of tenant A, is refused to a key of
// tenant B (read-write, and admin), to a key of A narrowed to another
// user, and to the tokens of other sessions (of A, and of B): 404 where a
// route names an entity they may not reach, 403 where the route is beyond
// a narrowed key or a token. No answer shows anything of A, and nothing of
// A changes. Routes over the caller's own tenant answer B's alone. A run
// of the same operations by A's own callers, on ids of A's kept apart,
// shows that each one filled so acts.
func TestTenancyAcceptanceFromOpenAPI(t *testing.T) {
	t.Parallel()
	s := startTenanted(t, nil)
	const ta, tb, spare = "tenant-alpha", "tenant-bravo", "tenant-spare"
	for _, id := range []string{ta, tb, spare} {
		newTenant(s, id)
	}
	ka, kaID := newKey(s, ta, "", "read", "write")
	kaAdmin, _ := newKey(s, ta, "", "admin")
	_, spareKeyID := newKey(s, ta, "", "read")
	kb, _ := newKey(s, tb, "", "read", "write")
	kbAdmin, _ := newKey(s, tb, "", "admin")
	a := as{s, ka}
	victim := populate(t, a, "zqvictimalpha")
	neighbour := populate(t, a, "zqneighbouralpha") // another user of A
	control := populate(t, a, "zqcontrolalpha")
	bravo := populate(t, as{s, kb}, "zqbravo")
	narrowed, _ := newKey(s, ta, neighbour.user, "read", "write")

	ops := documented(t, s)
	n := 0

	// A's own callers, on the control's ids: each operation, so filled,
	// acts.
	// Proofs are of events in a signed checkpoint: wait for one that
	// holds every event so far.
	cp := latestCovering(t, a, len(as{s, operatorKey}.all("/v1/events")))
	ctl := targets{person: control, tenant: ta, managed: spare, keyID: spareKeyID, projection: "users", checkpoint: fmt.Sprint(cp.Size)}
	for _, o := range ops {
		path := fill(t, o, ctl)[0]
		n++
		body := bodyFor(t, o, ctl, n)
		callers := []string{ka}
		switch classify(t, o) {
		case publicRoute:
			callers = []string{""}
		case operatorRoute:
			callers = []string{operatorKey}
		case keysRoute:
			callers = []string{kaAdmin}
		}
		if slices.Contains(sessionTokenRoutes, o.String()) {
			callers = append(callers, control.token)
		}
		for _, key := range callers {
			r := send(t, s, key, o.method, path, body)
			if strings.HasSuffix(o.path, "/erase") && r.Status == 503 {
				testwait.Eventually(t, 20*time.Second, "the erasure of the control", func() (bool, error) {
					r = send(t, s, key, o.method, path, body)
					return r.Status != 503, nil
				})
			}
			if !slices.Contains(o.success, r.Status) {
				t.Errorf("control: %s %s: %d, want %v: %s", o.method, path, r.Status, o.success, r.Body)
			}
		}
	}
	testwait.Eventually(t, 30*time.Second, "the control's projection rebuild", func() (bool, error) {
		r := as{s, operatorKey}.must(200, "GET", "/v1/admin/projections/users/rebuild", nil)
		if st := r.Str("state"); st != "running" && st != "done" {
			t.Fatalf("rebuild: %s", r.Body)
		}
		return r.Str("state") == "done", nil
	})
	if t.Failed() {
		t.FailNow()
	}

	// What A holds now, and what none of the attackers may see of it.
	before := stateOfA(t, s, ka, kaAdmin, ta, victim, neighbour)
	pool := testdb.Pool(t, s.URL)
	var head int64
	if err := pool.QueryRow(context.Background(), `SELECT coalesce(max(position), 0) FROM events`).Scan(&head); err != nil {
		t.Fatal(err)
	}
	secrets := []string{ta, victim.mark, neighbour.mark, control.mark, victim.token, neighbour.token, control.token}
	for _, e := range a.all("/v1/events") {
		_, id, _ := strings.Cut(e["stream_id"].(string), "-")
		secrets = append(secrets, e["event_id"].(string), id)
	}
	tenantAdmin := as{s, kaAdmin}
	for _, k := range tenantAdmin.must(200, "GET", "/v1/admin/keys", nil).Items() {
		secrets = append(secrets, k["id"].(string))
	}
	slices.Sort(secrets)
	secrets = slices.Compact(secrets)

	attackers := []attacker{
		{name: "tenant B's read-write key", key: kb, full: true},
		{name: "tenant B's admin key", key: kbAdmin, full: true, admin: true},
		{name: "A's key narrowed to another user", key: narrowed, own: []string{neighbour.user}},
		{name: "the token of another user's session of A", key: neighbour.token, session: true, own: []string{neighbour.user, neighbour.session}},
		{name: "the token of a session of B", key: bravo.token, session: true},
	}
	victims := targets{person: victim, tenant: ta, managed: ta, keyID: kaID, projection: "users", checkpoint: fmt.Sprint(cp.Size)}
	// Besides the streams the victim's events are in, those its ids
	// name that hold none yet.
	victims.streams = append(slices.Clip(victims.streams), "message-"+victim.userMsg, "summary-"+victim.session)
	sent := 0
	for _, at := range attackers {
		var mine []string
		for _, sec := range secrets {
			if !slices.Contains(at.own, sec) {
				mine = append(mine, sec)
			}
		}
		for _, o := range ops {
			want := at.expect(t, o)
			for _, path := range fill(t, o, victims) {
				n++
				body := bodyFor(t, o, victims, n)
				r := send(t, s, at.key, o.method, path, body)
				sent++
				switch {
				case want == 0 && !slices.Contains(o.success, r.Status):
					t.Errorf("%s: %s %s: %d, want %v (its own tenant's): %s", at.name, o.method, path, r.Status, o.success, r.Body)
				case want != 0 && r.Status != want:
					t.Errorf("%s: %s %s: %d, want %d: %s", at.name, o.method, path, r.Status, want, r.Body)
				case want >= 400 && r.Header.Get("Content-Type") != "application/problem+json":
					t.Errorf("%s: %s %s: %d as %q, want a problem", at.name, o.method, path, r.Status, r.Header.Get("Content-Type"))
				}
				if l := leaks(r, path, body, mine); len(l) > 0 {
					t.Errorf("%s: %s %s: the answer shows %q of A: %s", at.name, o.method, path, l, r.Body)
				}
			}
		}
	}

	t.Logf("%d operations of the document, %d requests of %d attackers", len(ops), sent, len(attackers))

	// Nothing of A changed, and the log holds nothing of A's since.
	after := stateOfA(t, s, ka, kaAdmin, ta, victim, neighbour)
	for k, v := range before {
		if !reflect.DeepEqual(v, after[k]) {
			t.Errorf("%s changed:\nbefore %v\nafter  %v", k, v, after[k])
		}
	}
	rows, err := pool.Query(context.Background(), `SELECT stream_id, data::text, coalesce(metadata->>'tenant', '') FROM events WHERE position > $1`, head)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var stream, data, tenant string
		if err := rows.Scan(&stream, &data, &tenant); err != nil {
			t.Fatal(err)
		}
		if tenant != tb {
			t.Errorf("an event of tenant %q in %s after the attempts: %s", tenant, stream, data)
		}
		for _, sec := range secrets {
			if strings.Contains(stream, sec) || strings.Contains(data, sec) {
				t.Errorf("an event after the attempts names %s of A: %s %s", sec, stream, data)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// stateOfA reads, with A's own keys, everything of A's people, their
// history, A's users, keys, feed and limits.
func stateOfA(t *testing.T, s *testserver.Server, key, adminKey, tenant string, people ...person) map[string]any {
	t.Helper()
	a := as{s, key}
	state := map[string]any{
		"users":   a.all("/v1/users"),
		"feed":    a.all("/v1/events"),
		"keys":    as{s, adminKey}.must(200, "GET", "/v1/admin/keys", nil).JSON,
		"tenant":  as{s, operatorKey}.must(200, "GET", "/v1/admin/tenants/"+tenant, nil).JSON,
		"tenants": as{s, operatorKey}.must(200, "GET", "/v1/admin/tenants", nil).JSON,
	}
	for _, p := range people {
		for _, path := range []string{"/v1/users/" + p.user, "/v1/sessions/" + p.session, "/v1/messages/" + p.userMsg,
			"/v1/messages/" + p.asstMsg, "/v1/memories/" + p.memory, "/v1/context-snapshots/" + p.snapshot,
			"/v1/context-snapshots/" + p.asstSnapshot, "/v1/messages/" + p.asstMsg + "/context",
			"/v1/users/" + p.user + "/history", "/v1/sessions/" + p.session + "/history", "/v1/memories/" + p.memory + "/history"} {
			state[path] = a.must(200, "GET", path, nil).JSON
		}
		for _, path := range []string{"/v1/users/" + p.user + "/sessions", "/v1/users/" + p.user + "/memories",
			"/v1/sessions/" + p.session + "/messages", "/v1/sessions/" + p.session + "/context/snapshots", "/v1/users/" + p.user + "/audit"} {
			state[path] = a.all(path)
		}
		for _, stream := range p.streams {
			state[stream] = a.must(200, "GET", "/v1/streams/"+stream+"/verify", nil).JSON
		}
		state["token of "+p.session] = a.must(200, "POST", "/v1/sessions/validate", map[string]any{"token": p.token}).JSON
	}
	return state
}
