package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testserver"
)

// mcpTools are the tools the MCP server lists.
var mcpTools = []string{"add_message", "context", "forget_memory", "memory_history", "memory_provenance", "recall", "remember", "start_session", "update_memory", "user"}

// bearerTransport sends an Authorization header with every request, as an
// MCP client configured with an API key does.
type bearerTransport struct {
	key string
	// next sends the request; nil: http.DefaultTransport.
	next http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.key != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+b.key)
	}
	if b.next == nil {
		return http.DefaultTransport.RoundTrip(r)
	}
	return b.next.RoundTrip(r)
}

// mcpOverHTTP connects the SDK's client to the server's /mcp with key
// ("" none).
func mcpOverHTTP(t *testing.T, s *testserver.Server, key string) *mcp.ClientSession {
	t.Helper()
	tr := &mcp.StreamableClientTransport{Endpoint: s.Base + "/mcp", HTTPClient: &http.Client{Transport: bearerTransport{key: key}}}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "arq-e2e", Version: "1"}, nil).Connect(context.Background(), tr, nil)
	if err != nil {
		t.Fatalf("connect to /mcp: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// callTool calls a tool and returns its result, failing on a protocol
// error (a tool error is a result).
func callTool(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	return res
}

// ok is the structured content of a tool's successful result.
func ok(t *testing.T, name string, res *mcp.CallToolResult) map[string]any {
	t.Helper()
	if res.IsError {
		t.Fatalf("%s failed: %s", name, text(res))
	}
	m, isMap := res.StructuredContent.(map[string]any)
	if !isMap {
		t.Fatalf("%s: structured content %T, want an object", name, res.StructuredContent)
	}
	return m
}

// failed is the problem of a tool's error result.
func failed(t *testing.T, name string, res *mcp.CallToolResult) map[string]any {
	t.Helper()
	if !res.IsError {
		t.Fatalf("%s succeeded, want an error: %s", name, text(res))
	}
	p, _ := res.StructuredContent.(map[string]any)
	return p
}

func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// exerciseMCP lists the tools and calls each one as an assistant would,
// and a few with bad input. rest, when not nil, sends the same requests to
// the REST API with the same credential, for the answers to be compared.
func exerciseMCP(t *testing.T, cs *mcp.ClientSession, rest func(method, path string, body any) testserver.Response) {
	t.Helper()
	ctx := context.Background()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, mcpTools) {
		t.Fatalf("tools %v, want %v", names, mcpTools)
	}
	for _, tl := range tools.Tools {
		props := fmtJSON(tl.InputSchema)
		if creates := slices.Contains([]string{"start_session", "add_message", "remember"}, tl.Name); creates != strings.Contains(props, `"idempotency_key"`) {
			t.Errorf("tool %s: idempotency_key in its schema is %v: %s", tl.Name, !creates, props)
		}
	}

	user := ok(t, "user", callTool(t, cs, "user", map[string]any{"external_id": "ext-ada", "name": "Ada"}))
	again := ok(t, "user", callTool(t, cs, "user", map[string]any{"external_id": "ext-ada"}))
	if user["id"] == nil || again["id"] != user["id"] {
		t.Fatalf("the user found again is %v, registered %v", again["id"], user["id"])
	}
	userID := user["id"].(string)
	session := ok(t, "start_session", callTool(t, cs, "start_session", map[string]any{"user_id": userID, "title": "trip"}))
	sessionID := session["id"].(string)
	ok(t, "add_message", callTool(t, cs, "add_message", map[string]any{"session_id": sessionID, "role": "user", "content": "Book me a flight to Lisbon, window seat."}))
	ok(t, "add_message", callTool(t, cs, "add_message", map[string]any{"session_id": sessionID, "role": "assistant", "content": "Booked."}))
	remember := map[string]any{"user_id": userID, "type": "semantic", "content": "Ada prefers window seats on flights", "tags": []string{"travel"}, "idempotency_key": "seat-1"}
	memory := ok(t, "remember", callTool(t, cs, "remember", remember))
	memoryID := memory["id"].(string)
	// A retry with the same idempotency key stores nothing more.
	if again := ok(t, "remember", callTool(t, cs, "remember", remember)); again["id"] != memoryID {
		t.Errorf("remember retried with its idempotency key stored %v, first %s", again["id"], memoryID)
	}

	hits := ok(t, "recall", callTool(t, cs, "recall", map[string]any{"user_id": userID, "query": "window seats"}))
	if items, _ := hits["items"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != memoryID {
		t.Errorf("recall found %v, want the memory %s", hits["items"], memoryID)
	}

	// The context: the REST window as structured content, and the text
	// GET ...?format=text answers.
	res := callTool(t, cs, "context", map[string]any{"session_id": sessionID, "max_tokens": 2000, "query": "seats"})
	window := ok(t, "context", res)
	if msgs, _ := window["messages"].([]any); len(msgs) != 2 || window["session_id"] != sessionID {
		t.Errorf("context window: %v", window)
	}
	if mems, _ := window["memories"].([]any); len(mems) != 1 {
		t.Errorf("context memories: %v", window["memories"])
	}
	for _, want := range []string{"## What you remember about the user", "- (semantic) Ada prefers window seats on flights", "## Conversation", "user: Book me a flight to Lisbon, window seat.", "assistant: Booked."} {
		if !strings.Contains(text(res), want) {
			t.Errorf("context text lacks %q:\n%s", want, text(res))
		}
	}
	if rest != nil {
		r := rest("GET", "/v1/sessions/"+sessionID+"/context?max_tokens=2000&query=seats&format=text", nil)
		if r.Status != 200 || r.Header.Get("Content-Type") != "text/plain; charset=utf-8" || string(r.Body) != text(res) {
			t.Errorf("REST context as text: %d %s\n%s\nwant the tool's:\n%s", r.Status, r.Header.Get("Content-Type"), r.Body, text(res))
		}
	}
	read, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "arq://sessions/" + sessionID + "/context"})
	if err != nil {
		t.Fatalf("read the context resource: %v", err)
	}
	if len(read.Contents) != 1 || !strings.Contains(read.Contents[0].Text, "assistant: Booked.") || read.Contents[0].MIMEType != "text/plain" {
		t.Errorf("context resource: %+v", read.Contents)
	}
	read, err = cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "arq://sessions/" + sessionID + "/context?max_tokens=2000&query=seats"})
	if err != nil || len(read.Contents) != 1 || read.Contents[0].Text != text(res) {
		t.Errorf("context resource with the tool's budget and query: %v %+v, want the tool's text", err, read)
	}
	if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "arq://sessions/" + sessionID + "/context?max_tokens=0"}); err == nil || !strings.Contains(err.Error(), "max_tokens") {
		t.Errorf("context resource with max_tokens=0: %v, want REST's 422", err)
	}

	updated := ok(t, "update_memory", callTool(t, cs, "update_memory", map[string]any{"memory_id": memoryID, "expected_version": 1, "content": "Ada prefers aisle seats now", "importance": 0.9}))
	if updated["content"] != "Ada prefers aisle seats now" || updated["version"] != float64(2) {
		t.Errorf("updated memory: %v", updated)
	}
	stale := failed(t, "update_memory", callTool(t, cs, "update_memory", map[string]any{"memory_id": memoryID, "expected_version": 1, "content": "x"}))
	if stale["status"] != float64(412) {
		t.Errorf("update with a stale version: %v, want 412", stale)
	}
	history := ok(t, "memory_history", callTool(t, cs, "memory_history", map[string]any{"memory_id": memoryID}))
	if items, _ := history["items"].([]any); len(items) != 2 {
		t.Errorf("memory history: %v", history)
	}
	prov := callTool(t, cs, "memory_provenance", map[string]any{"memory_id": memoryID})
	if p := ok(t, "memory_provenance", prov); p["memory_id"] != memoryID || len(p["derivations"].([]any)) != 0 || !strings.Contains(text(prov), "A client stored this memory") {
		t.Errorf("provenance of a client's memory: %v %s", p, text(prov))
	}
	if res := callTool(t, cs, "forget_memory", map[string]any{"memory_id": memoryID}); res.IsError {
		t.Fatalf("forget_memory: %s", text(res))
	}
	hits = ok(t, "recall", callTool(t, cs, "recall", map[string]any{"user_id": userID, "query": "aisle"}))
	if len(hits["items"].([]any)) != 0 {
		t.Errorf("recall after forget_memory: %v", hits["items"])
	}

	// Bad input is refused as REST refuses it: the same problem, field by
	// field, as structured content, and in the text.
	bad := map[string]any{"type": "nope", "content": "", "importance": 3}
	p := failed(t, "remember", callTool(t, cs, "remember", map[string]any{"user_id": userID, "type": "nope", "content": "", "importance": 3}))
	if p["status"] != float64(422) || p["title"] != "Invalid input" || len(p["errors"].([]any)) < 2 {
		t.Errorf("remember with bad input: %v", p)
	}
	if rest != nil {
		r := rest("POST", "/v1/users/"+userID+"/memories", bad)
		if r.Status != 422 || !equalJSON(r.JSON["errors"], p["errors"]) || r.JSON["title"] != p["title"] || r.JSON["detail"] != p["detail"] {
			t.Errorf("REST's problem %s\nthe tool's %v", r.Body, p)
		}
	}
	res = callTool(t, cs, "remember", map[string]any{"user_id": userID, "type": "nope", "content": ""})
	for _, want := range []string{"Invalid input (422)", "- type: ", "- content: "} {
		if !strings.Contains(text(res), want) {
			t.Errorf("the error's text lacks %q: %s", want, text(res))
		}
	}
	if p := failed(t, "context", callTool(t, cs, "context", map[string]any{"session_id": sessionID, "max_tokens": 0})); p["status"] != float64(422) {
		t.Errorf("context with max_tokens 0: %v", p)
	}
	if p := failed(t, "recall", callTool(t, cs, "recall", map[string]any{"query": "x"})); p["status"] != float64(422) || !strings.Contains(fmtJSON(p["errors"]), "user_id") {
		t.Errorf("recall without user_id: %v", p)
	}
	if p := failed(t, "memory_history", callTool(t, cs, "memory_history", map[string]any{"memory_id": "01HZZZZZZZZZZZZZZZZZZZZZZZ"})); p["status"] != float64(404) {
		t.Errorf("history of no memory: %v", p)
	}
}

func equalJSON(a, b any) bool { return fmtJSON(a) == fmtJSON(b) }

func fmtJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// The MCP face over streamable HTTP, at /mcp, behind the API's keys: each
// tool answers as its REST request does, a tenant's key reaches its own
// tenant alone, and a request without a valid key is refused 401 before
// any MCP exchange.
func TestMCPOverHTTP(t *testing.T) {
	t.Parallel()
	s := startTenanted(t, nil)
	newTenant(s, "acme")
	newTenant(s, "globex")
	acme, _ := newKey(s, "acme", "", "read", "write")
	globex, _ := newKey(s, "globex", "", "read", "write")

	cs := mcpOverHTTP(t, s, acme)
	exerciseMCP(t, cs, func(method, path string, body any) testserver.Response { return as{s, acme}.do(method, path, body) })

	// Globex's key reaches none of acme's users, sessions or memories.
	user := ok(t, "user", callTool(t, cs, "user", map[string]any{"external_id": "ext-grace", "name": "Grace"}))
	userID := user["id"].(string)
	mem := ok(t, "remember", callTool(t, cs, "remember", map[string]any{"user_id": userID, "type": "semantic", "content": "Grace keeps a secret"}))
	session := ok(t, "start_session", callTool(t, cs, "start_session", map[string]any{"user_id": userID}))
	other := mcpOverHTTP(t, s, globex)
	for _, c := range []struct {
		tool string
		args map[string]any
	}{
		{"recall", map[string]any{"user_id": userID, "query": "secret"}},
		{"remember", map[string]any{"user_id": userID, "type": "semantic", "content": "planted"}},
		{"update_memory", map[string]any{"memory_id": mem["id"], "content": "changed"}},
		{"forget_memory", map[string]any{"memory_id": mem["id"]}},
		{"memory_history", map[string]any{"memory_id": mem["id"]}},
		{"context", map[string]any{"session_id": session["id"]}},
		{"add_message", map[string]any{"session_id": session["id"], "role": "user", "content": "planted"}},
	} {
		res := callTool(t, other, c.tool, c.args)
		if p := failed(t, c.tool, res); p["status"] != float64(404) || strings.Contains(text(res), "secret") {
			t.Errorf("globex's %s on acme's data: %v", c.tool, p)
		}
	}
	if _, err := other.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "arq://sessions/" + session["id"].(string) + "/context"}); err == nil {
		t.Error("globex read acme's session's context as a resource")
	}
	found := ok(t, "user", callTool(t, other, "user", map[string]any{"external_id": "ext-grace", "name": "Grace G"}))
	if found["id"] == userID {
		t.Error("globex found acme's user by their external id")
	}
	got := as{s, acme}.must(200, "GET", "/v1/memories/"+mem["id"].(string), nil)
	if got.Str("content") != "Grace keeps a secret" || got.Num("version") != 1 {
		t.Errorf("acme's memory after globex's tries: %s", got.Body)
	}

	// A session's token reaches its own session's messages and context
	// alone, as on REST.
	token := session["token"].(string)
	mine := mcpOverHTTP(t, s, token)
	ok(t, "add_message", callTool(t, mine, "add_message", map[string]any{"session_id": session["id"], "role": "user", "content": "hello"}))
	if w := ok(t, "context", callTool(t, mine, "context", map[string]any{"session_id": session["id"]})); len(w["messages"].([]any)) != 1 {
		t.Errorf("the session's context with its token: %v", w)
	}
	if p := failed(t, "recall", callTool(t, mine, "recall", map[string]any{"user_id": userID, "query": "secret"})); p["status"] != float64(403) {
		t.Errorf("recall with a session's token: %v, want 403", p)
	}

	// A reverse proxy on the same machine forwards requests under the
	// deployment's host name: served as REST is.
	list := `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`
	req, err := http.NewRequest("POST", s.Base+"/mcp", strings.NewReader(list))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "arq.example.com"
	req.Header.Set("Authorization", "Bearer "+acme)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), `"remember"`) {
		t.Errorf("POST /mcp forwarded under another host name: %d %s", res.StatusCode, body)
	}

	// No key, or a wrong one: 401 with a problem, before any MCP exchange.
	initialize := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`
	for _, key := range []string{"", "wrong"} {
		r := (as{s, key}).do("POST", "/mcp", initialize, "Accept", "application/json, text/event-stream")
		if r.Status != 401 || r.Header.Get("Content-Type") != "application/problem+json" || r.Str("title") != "Unauthorized" || r.Header.Get("Mcp-Session-Id") != "" {
			t.Errorf("POST /mcp with key %q: %d %s %s", key, r.Status, r.Header.Get("Content-Type"), r.Body)
		}
	}
	tr := &mcp.StreamableClientTransport{Endpoint: s.Base + "/mcp", MaxRetries: -1}
	if cs, err := mcp.NewClient(&mcp.Implementation{Name: "anonymous"}, nil).Connect(context.Background(), tr, nil); err == nil {
		cs.Close()
		t.Error("an MCP client without a key connected")
	}
}

// mcpOverStdio runs `arq mcp` over the database at url with env, and
// connects the SDK's client to it through its stdin and stdout.
func mcpOverStdio(t *testing.T, url string, env map[string]string, args ...string) *mcp.ClientSession {
	t.Helper()
	e := map[string]string{"ARQ_DATABASE_URL": url, "ARQ_MASTER_KEY": testdb.MasterKey, "ARQ_LOG_SIGNING_KEY": testdb.LogSigningKey,
		"ARQ_DB_MAX_CONNS": "8", "ARQ_READ_YOUR_WRITES_TIMEOUT": "20s", "ARQ_LOG_LEVEL": "warn"}
	for k, v := range env {
		e[k] = v
	}
	cmd := exec.Command(binary, append([]string{"mcp"}, args...)...)
	cmd.Env = arqEnv(e)
	stderr := &testserver.SyncBuffer{}
	cmd.Stderr = stderr
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "arq-e2e", Version: "1"}, nil).Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatalf("start arq mcp: %v\n%s", err, stderr)
	}
	t.Cleanup(func() {
		// Closing stdin ends the session; arq mcp then stops and exits 0.
		if err := cs.Close(); err != nil {
			t.Errorf("arq mcp did not end cleanly: %v\n%s", err, stderr)
		}
		if cmd.ProcessState == nil || !cmd.ProcessState.Success() {
			t.Errorf("arq mcp: %v\n%s", cmd.ProcessState, stderr)
		}
	})
	return cs
}

// `arq mcp` serves the same tools over stdio, each call made with
// ARQ_MCP_KEY; without it, an API with keys refuses every call.
func TestMCPOverStdio(t *testing.T) {
	t.Parallel()
	url := testdb.New(t)
	keyed := map[string]string{"ARQ_ADMIN_KEY": operatorKey}
	cs := mcpOverStdio(t, url, map[string]string{"ARQ_ADMIN_KEY": operatorKey, "ARQ_MCP_KEY": operatorKey})
	exerciseMCP(t, cs, nil)
	cs.Close()

	keyless := mcpOverStdio(t, url, keyed)
	p := failed(t, "user", callTool(t, keyless, "user", map[string]any{"external_id": "ext-ada"}))
	if p["status"] != float64(401) {
		t.Errorf("a call without ARQ_MCP_KEY: %v, want 401", p)
	}
}

// `arq mcp --url` serves the tools of a remote server, each call a
// request to it with ARQ_MCP_KEY, and opens no database.
func TestMCPOverStdioToARemoteServer(t *testing.T) {
	t.Parallel()
	s := startTenanted(t, nil)
	newTenant(s, "acme")
	acme, _ := newKey(s, "acme", "", "read", "write")
	cs := mcpOverStdio(t, "postgres://nobody@127.0.0.1:1/none", map[string]string{"ARQ_MCP_KEY": acme}, "--url", s.Base)
	exerciseMCP(t, cs, func(method, path string, body any) testserver.Response { return as{s, acme}.do(method, path, body) })
}

// An API without keys serves /mcp to anyone, as it serves REST.
func TestMCPOverHTTPOnAnOpenAPI(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t, nil)
	cs := mcpOverHTTP(t, s, "")
	user := ok(t, "user", callTool(t, cs, "user", map[string]any{"external_id": "ext-open", "name": "Open"}))
	if got := s.Must(200, s.Do("GET", "/v1/users/"+user["id"].(string), nil)); got.Str("external_id") != "ext-open" {
		t.Errorf("the user registered over MCP: %s", got.Body)
	}
}

// Each request to /mcp counts once against its key's rate limit, as a
// REST request does: a tool call's REST request is not counted again, and
// past the burst /mcp answers 429 before any MCP exchange, a listing of
// the tools as a tool call.
func TestMCPToolCallsCountOnceAgainstTheKeysLimit(t *testing.T) {
	t.Parallel()
	s, _ := startLimited(t, nil) // each key: 1 a second, a burst of 3
	key := as{s, "admin-secret"}.must(201, "POST", "/v1/admin/keys", map[string]any{"name": "mcp", "scopes": []string{"read", "write"}}).Str("key")
	cs := mcpOverHTTP(t, s, key) // initialize and its notification: two requests of the burst
	args := map[string]any{"user_id": "01HZZZZZZZZZZZZZZZZZZZZZZZ", "query": "x"}
	// The third: counted at /mcp, its REST request not again (else the
	// REST request would be the fourth, refused 429).
	if p := failed(t, "recall", callTool(t, cs, "recall", args)); p["status"] != float64(404) {
		t.Fatalf("the third request of the burst: %v, want the REST 404", p)
	}
	// The burst is spent; a second refills one request, so look for the
	// 429 among the next few.
	refused := false
	for range 10 {
		if _, err := cs.ListTools(context.Background(), nil); err != nil {
			if !strings.Contains(err.Error(), "Too Many Requests") {
				t.Fatalf("tools/list past the burst: %v, want 429", err)
			}
			refused = true
			break
		}
	}
	if !refused {
		t.Error("no request past the burst was refused 429")
	}
	// The log at info has the access log's line for each MCP request, and
	// not the SDK's session of each.
	if mcp := s.Where(t, map[string]any{"msg": "request", "path": "/mcp"}); len(mcp) < 4 {
		t.Errorf("%d access log lines of /mcp, want one a request", len(mcp))
	}
	// Each line has the MCP answer's own status: 200 for a call, 429 past
	// the burst.
	if ok, limited := s.Where(t, map[string]any{"msg": "request", "path": "/mcp", "status": float64(200)}),
		s.Where(t, map[string]any{"msg": "request", "path": "/mcp", "status": float64(429)}); len(ok) == 0 || len(limited) == 0 {
		t.Errorf("access log lines of /mcp: %d with status 200, %d with 429; want the answers' own statuses", len(ok), len(limited))
	}
	for _, l := range s.Lines(t) {
		if msg, _ := l["msg"].(string); strings.Contains(msg, "session") {
			t.Errorf("the SDK logged at info: %v", l)
			break
		}
	}
}

// A browser app of an allowed origin (ARQ_CORS_ORIGINS) may call /mcp:
// its preflight is allowed MCP's headers, and the answers carry the
// API's CORS headers; another origin is refused, as on REST.
func TestMCPFromABrowserOfAnAllowedOrigin(t *testing.T) {
	t.Parallel()
	const app = "https://app.example"
	s := startTenanted(t, map[string]string{"ARQ_CORS_ORIGINS": app})
	send := func(method, origin, body string, headers ...string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, s.Base+"/mcp", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", origin)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res, string(b)
	}
	res, _ := send("OPTIONS", app, "", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization,content-type,mcp-protocol-version")
	if res.StatusCode/100 != 2 || res.Header.Get("Access-Control-Allow-Origin") != app ||
		!strings.Contains(strings.ToLower(res.Header.Get("Access-Control-Allow-Headers")), "mcp-protocol-version") {
		t.Errorf("preflight of /mcp: %d %v", res.StatusCode, res.Header)
	}
	list := `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`
	mcpHeaders := []string{"Authorization", "Bearer " + operatorKey, "Content-Type", "application/json",
		"Accept", "application/json, text/event-stream", "Mcp-Protocol-Version", "2025-06-18"}
	res, body := send("POST", app, list, mcpHeaders...)
	if res.StatusCode != 200 || res.Header.Get("Access-Control-Allow-Origin") != app || !strings.Contains(body, `"context"`) {
		t.Errorf("POST /mcp from %s: %d %v %s", app, res.StatusCode, res.Header, body)
	}
	if res, body := send("POST", "https://evil.example", list, mcpHeaders...); res.StatusCode != 403 || res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("POST /mcp from another origin: %d %v %s", res.StatusCode, res.Header, body)
	}
	// A page of the server's own origin is no cross-origin caller, on
	// /mcp as on REST; every answer names its request.
	if res, body := send("POST", s.Base, list, mcpHeaders...); res.StatusCode != 200 || res.Header.Get("X-Request-ID") == "" {
		t.Errorf("POST /mcp from the server's own origin: %d %v %s", res.StatusCode, res.Header, body)
	}
}

// A tool call's REST request is the caller's, from the caller's address:
// another client's wrong keys, from another address, spend that address's
// allowance alone, and refuse no MCP call of a valid key.
func TestMCPToolCallsComeFromTheCallersAddress(t *testing.T) {
	t.Parallel()
	s, _ := startLimited(t, nil) // wrong keys: 1 a second an address, a burst of 3
	key := as{s, "admin-secret"}.must(201, "POST", "/v1/admin/keys", map[string]any{"name": "mcp", "scopes": []string{"read", "write"}}).Str("key")
	// The MCP client connects from 127.0.0.2.
	from := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	other := &http.Transport{DialContext: from.DialContext}
	t.Cleanup(other.CloseIdleConnections)
	tr := &mcp.StreamableClientTransport{Endpoint: s.Base + "/mcp", HTTPClient: &http.Client{Transport: bearerTransport{key, other}}}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "arq-e2e", Version: "1"}, nil).Connect(context.Background(), tr, nil)
	if err != nil {
		t.Fatalf("connect to /mcp from 127.0.0.2: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	// 127.0.0.1 spends its allowance of wrong keys.
	for i := 0; ; i++ {
		r := as{s, "wrong-key"}.do("GET", "/v1/users", nil)
		if r.Status == http.StatusTooManyRequests {
			break
		}
		if i == 10 {
			t.Fatalf("wrong keys from 127.0.0.1 were never refused 429: %d", r.Status)
		}
	}
	args := map[string]any{"user_id": "01HZZZZZZZZZZZZZZZZZZZZZZZ", "query": "x"}
	if p := failed(t, "recall", callTool(t, cs, "recall", args)); p["status"] != float64(404) {
		t.Fatalf("a tool call from 127.0.0.2 after 127.0.0.1's wrong keys: %v, want the REST 404", p)
	}
}
