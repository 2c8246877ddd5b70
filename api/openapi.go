package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/arq-memory/arq/version"
)

// operation documents one route of the API.
type operation struct {
	// id is the operationId: the method's name in generated clients.
	id, method, path, summary, tag string
	// body names the request schema ("" for none).
	body string
	// ok is the success status and its schema ("" for no body).
	status int
	schema string
	// command marks routes that append events: they answer with
	// X-Arq-Position and may answer 202.
	command bool
	// list marks paginated reads (cursor, limit).
	list bool
}

// operations is the whole API; the OpenAPI document is made from it, and a
// test checks it against the routes the router really has.
var operations = []operation{
	{id: "health", method: "GET", path: "/healthz", summary: "The process is alive", tag: "health", status: 200, schema: "Health"},
	{id: "ready", method: "GET", path: "/readyz", summary: "Postgres answers and no projection has stopped", tag: "health", status: 200, schema: "Ready"},
	{id: "openAPI", method: "GET", path: "/openapi.json", summary: "This document", tag: "health", status: 200, schema: "Object"},
	{id: "docs", method: "GET", path: "/docs", summary: "This document rendered as an API reference (HTML)", tag: "health", status: 200, schema: "HTML"},
	{id: "docsScript", method: "GET", path: "/docs/redoc.standalone.js", summary: "The script that renders /docs (Redoc)", tag: "health", status: 200, schema: "Script"},
	{id: "metrics", method: "GET", path: "/metrics", summary: "Prometheus metrics of this process (a key with the read scope when keys are on)", tag: "health", status: 200, schema: "Metrics"},
	{id: "stats", method: "GET", path: "/v1/stats", summary: "Counts of each resource and of events; projection positions and lag", tag: "stats", status: 200, schema: "Stats"},

	{id: "registerUser", method: "POST", path: "/v1/users", summary: "Register a user", tag: "users", body: "RegisterUser", status: 201, schema: "User", command: true},
	{id: "listUsers", method: "GET", path: "/v1/users", summary: "List users", tag: "users", status: 200, schema: "UserList", list: true},
	{id: "getUser", method: "GET", path: "/v1/users/{id}", summary: "Get a user", tag: "users", status: 200, schema: "User"},
	{id: "updateUser", method: "PATCH", path: "/v1/users/{id}", summary: "Update a user's profile", tag: "users", body: "UpdateUser", status: 200, schema: "User", command: true},
	{id: "deleteUser", method: "DELETE", path: "/v1/users/{id}", summary: "Delete a user, its sessions, messages and memories", tag: "users", status: 204, command: true},
	{id: "eraseUser", method: "POST", path: "/v1/users/{id}/erase", summary: "Erase a user for good (also one deleted before): their profile, external id, sessions' titles and metadata, messages, memories, summaries and snapshots become unreadable everywhere ARQ keeps them; the user is deleted. Answers once the erasure is complete (503 erasure-pending when the projections lag: erase again); erasing again answers the same", tag: "users", status: 200, schema: "Erased"},

	{id: "startSession", method: "POST", path: "/v1/users/{id}/sessions", summary: "Start a session (the answer holds its token, once)", tag: "sessions", body: "StartSession", status: 201, schema: "SessionWithToken", command: true},
	{id: "listSessions", method: "GET", path: "/v1/users/{id}/sessions", summary: "List a user's sessions", tag: "sessions", status: 200, schema: "SessionList", list: true},
	{id: "getSession", method: "GET", path: "/v1/sessions/{id}", summary: "Get a session", tag: "sessions", status: 200, schema: "Session"},
	{id: "extendSession", method: "POST", path: "/v1/sessions/{id}/extend", summary: "Extend a session's time to live to ttl_seconds from now (never shorter; a session without an expiry keeps none)", tag: "sessions", body: "ExtendSession", status: 200, schema: "Session", command: true},
	{id: "closeSession", method: "POST", path: "/v1/sessions/{id}/close", summary: "Close a session", tag: "sessions", status: 200, schema: "Session", command: true},
	{id: "validateSession", method: "POST", path: "/v1/sessions/validate", summary: "Validate a session token (401 when unknown, closed or expired)", tag: "sessions", body: "ValidateSession", status: 200, schema: "Session"},

	{id: "appendMessages", method: "POST", path: "/v1/sessions/{id}/messages", summary: "Append a message, or {\"messages\": [...]} together", tag: "messages", body: "AppendMessages", status: 201, schema: "AppendedMessages", command: true},
	{id: "listMessages", method: "GET", path: "/v1/sessions/{id}/messages", summary: "List a session's messages in order", tag: "messages", status: 200, schema: "MessageList", list: true},
	{id: "getMessage", method: "GET", path: "/v1/messages/{id}", summary: "Get a message", tag: "messages", status: 200, schema: "Message"},
	{id: "editMessage", method: "PATCH", path: "/v1/messages/{id}", summary: "Edit a message", tag: "messages", body: "EditMessage", status: 200, schema: "Message", command: true},
	{id: "deleteMessage", method: "DELETE", path: "/v1/messages/{id}", summary: "Delete (redact) a message; its history remains. With erase=true, erase it for good, with the summaries and snapshots that hold its text (the rest of its session stays readable). With cascade=derived, the memories an extraction stored from it go first (never a memory a client stored)", tag: "messages", status: 204, command: true},
	{id: "listDerivedMemories", method: "GET", path: "/v1/messages/{id}/derived", summary: "The memories extractions made or changed from a message: one item per memory event that read it, with the memory's current content while it lives", tag: "messages", status: 200, schema: "DerivedMemories"},

	{id: "storeMemory", method: "POST", path: "/v1/users/{id}/memories", summary: "Store a memory", tag: "memories", body: "StoreMemory", status: 201, schema: "Memory", command: true},
	{id: "listMemories", method: "GET", path: "/v1/users/{id}/memories", summary: "List a user's memories, newest first, with filters", tag: "memories", status: 200, schema: "MemoryList", list: true},
	{id: "searchMemories", method: "POST", path: "/v1/users/{id}/memories/search", summary: "Ranked search of a user's memories: full text, fused with vector similarity when there is an embedding", tag: "memories", body: "SearchMemories", status: 200, schema: "MemoryHits"},
	{id: "getMemory", method: "GET", path: "/v1/memories/{id}", summary: "Get a memory", tag: "memories", status: 200, schema: "Memory"},
	{id: "updateMemory", method: "PATCH", path: "/v1/memories/{id}", summary: "Update a memory", tag: "memories", body: "UpdateMemory", status: 200, schema: "Memory", command: true},
	{id: "getMemoryProvenance", method: "GET", path: "/v1/memories/{id}/provenance", summary: "Where a memory came from, from the log: each change an extraction decided (run, extractor, model, prompts, the model's reason) with the messages it read, as they were at the versions read; none for a memory a client stored", tag: "memories", status: 200, schema: "MemoryProvenance"},
	{id: "deleteMemory", method: "DELETE", path: "/v1/memories/{id}", summary: "Delete a memory. With erase=true, erase it for good (also one deleted or expired before)", tag: "memories", status: 204, command: true},
	{id: "consolidateMemories", method: "POST", path: "/v1/users/{id}/memories/consolidate", summary: "Merge the user's duplicate memories among their newest 500, as events: exact duplicates (same type and text, trimmed and case-folded) always, near-duplicates as the server's extractor decides when one is configured (model: null when none). Each superseded memory leaves every read and keeps its history. Answered once the query tables hold the merges, with X-Arq-Position", tag: "memories", status: 200, schema: "Consolidation"},

	{id: "getContext", method: "GET", path: "/v1/sessions/{id}/context", summary: "The session's context window: summary, newest messages and relevant memories within max_tokens", tag: "context", status: 200, schema: "ContextWindow"},
	{id: "postContext", method: "POST", path: "/v1/sessions/{id}/context", summary: "The session's context window, asked for in a JSON body that may carry the query's embedding", tag: "context", body: "WindowRequest", status: 200, schema: "ContextWindow"},
	{id: "takeSnapshot", method: "POST", path: "/v1/sessions/{id}/context/snapshots", summary: "Record what the session's context window holds now", tag: "context", body: "WindowRequest", status: 201, schema: "ContextSnapshot", command: true},
	{id: "listSnapshots", method: "GET", path: "/v1/sessions/{id}/context/snapshots", summary: "List the session's context snapshots, each item with its text as it was", tag: "context", status: 200, schema: "ContextSnapshotList", list: true},
	{id: "getSnapshot", method: "GET", path: "/v1/context-snapshots/{id}", summary: "Get a context snapshot, each item with its text as it was", tag: "context", status: 200, schema: "ContextSnapshot"},
	{id: "getMessageContext", method: "GET", path: "/v1/messages/{id}/context", summary: "The context snapshot behind an assistant message", tag: "context", status: 200, schema: "ContextSnapshot"},

	{id: "streamSession", method: "GET", path: "/v1/sessions/{id}/stream", summary: "Server-Sent Events: the session's new messages, summaries and context snapshots, from ?after= (or Last-Event-ID) on, then live", tag: "live", status: 200, schema: "EventStream"},
	{id: "streamEvents", method: "GET", path: "/v1/events/stream", summary: "Server-Sent Events: the event log, from ?after= (or Last-Event-ID) on, then live", tag: "live", status: 200, schema: "EventStream"},

	{id: "listEvents", method: "GET", path: "/v1/events", summary: "The event log in commit-safe order, paged; Accept: application/x-ndjson streams it", tag: "audit", status: 200, schema: "EventPage"},
	{id: "userAudit", method: "GET", path: "/v1/users/{id}/audit", summary: "Every event that touched a user or anything of theirs, paged", tag: "audit", status: 200, schema: "EventPage"},
	{id: "userHistory", method: "GET", path: "/v1/users/{id}/history", summary: "Every event of a user: when, who, which request, what changed", tag: "audit", status: 200, schema: "History"},
	{id: "sessionHistory", method: "GET", path: "/v1/sessions/{id}/history", summary: "Every event of a session: when, who, which request, what changed", tag: "audit", status: 200, schema: "History"},
	{id: "messageHistory", method: "GET", path: "/v1/messages/{id}/history", summary: "Every event of a message, also after it was deleted", tag: "audit", status: 200, schema: "History"},
	{id: "memoryHistory", method: "GET", path: "/v1/memories/{id}/history", summary: "Every event of a memory, also after it was deleted", tag: "audit", status: 200, schema: "History"},
	{id: "latestCheckpoint", method: "GET", path: "/v1/log/checkpoint", summary: "The latest signed checkpoint of the log: its size, its Merkle root and the signed note", tag: "audit", status: 200, schema: "Checkpoint"},
	{id: "getCheckpoint", method: "GET", path: "/v1/log/checkpoints/{size}", summary: "The signed checkpoint of the log at this size", tag: "audit", status: 200, schema: "Checkpoint"},
	{id: "consistencyProof", method: "GET", path: "/v1/log/consistency", summary: "Proof that the log at size to extends the log at size from (RFC 6962 consistency proof)", tag: "audit", status: 200, schema: "ConsistencyProof"},
	{id: "inclusionProof", method: "GET", path: "/v1/events/{id}/proof", summary: "Proof that an event is in the log at a checkpoint's size (RFC 6962 inclusion proof)", tag: "audit", status: 200, schema: "InclusionProof"},
	{id: "verifyStream", method: "GET", path: "/v1/streams/{stream}/verify", summary: "Walk one stream's hash chain and report every broken link", tag: "audit", status: 200, schema: "Verification"},

	{id: "createKey", method: "POST", path: "/v1/admin/keys", summary: "Create an API key (shown once)", tag: "admin", body: "CreateKey", status: 201, schema: "KeyWithSecret"},
	{id: "listKeys", method: "GET", path: "/v1/admin/keys", summary: "List API keys", tag: "admin", status: 200, schema: "KeyList"},
	{id: "revokeKey", method: "DELETE", path: "/v1/admin/keys/{id}", summary: "Revoke an API key; its open event streams end within a second", tag: "admin", status: 204},
	{id: "createTenant", method: "POST", path: "/v1/admin/tenants", summary: "Create a tenant (the admin key alone)", tag: "admin", body: "CreateTenant", status: 201, schema: "Tenant"},
	{id: "listTenants", method: "GET", path: "/v1/admin/tenants", summary: "List the tenants (the admin key alone)", tag: "admin", status: 200, schema: "TenantList"},
	{id: "getTenant", method: "GET", path: "/v1/admin/tenants/{tenant}", summary: "A tenant and its rate limits (the admin key alone)", tag: "admin", status: 200, schema: "Tenant"},
	{id: "setTenantLimits", method: "PATCH", path: "/v1/admin/tenants/{tenant}", summary: "Set a tenant's rate limits; a limit left out or null is the deployment's (the admin key alone)", tag: "admin", body: "TenantLimits", status: 200, schema: "Tenant"},
	{id: "rebuildProjection", method: "POST", path: "/v1/admin/projections/{name}/rebuild", summary: "Rebuild a projection online: a new copy is built while the live tables serve, then switched in (202; 409 when one runs)", tag: "admin", status: 202, schema: "RebuildJob"},
	{id: "rebuildStatus", method: "GET", path: "/v1/admin/projections/{name}/rebuild", summary: "The last online rebuild of a projection started by this process", tag: "admin", status: 200, schema: "RebuildJob"},
}

// ginPath is the router's form of an OpenAPI path: {id} becomes :id.
func ginPath(p string) string {
	return strings.NewReplacer("{", ":", "}", "").Replace(p)
}

// errorAnswers are the error answers operations declare, by status: each a
// problem+json (RFC 9457) whose type tells the cause.
var errorAnswers = map[int]string{
	400: "the request is malformed: its JSON, a query parameter this route does not know, or a header",
	401: "no key, an unknown or revoked key, or a session token that opens no open session",
	403: "the key lacks the scope, or is narrowed to another user or tenant's routes",
	404: "no such resource in the key's tenant (another tenant's is answered the same)",
	409: "the change conflicts with the resource's state (a taken external id, a closed session, an Idempotency-Key in flight)",
	412: "If-Match names a version that is no longer the current one",
	413: "the body is larger than ARQ_MAX_BODY_BYTES (on any route)",
	415: "the body is not application/json",
	422: "a field or query parameter breaks the API's rules; errors lists each",
	429: "over the rate limit of the key or tenant; Retry-After says when to come back",
	503: "the projections lag behind X-Arq-Min-Position, or a dependency is down",
}

// errorName names the shared answer of an error status.
func errorName(status int) string {
	return strings.ReplaceAll(http.StatusText(status), " ", "")
}

// errorStatuses lists the error answers op may give.
func errorStatuses(op operation) []int {
	if !strings.HasPrefix(op.path, "/v1/") {
		// A body over the limit is refused on every route, these too.
		if op.path == "/metrics" {
			return []int{401, 403, 413, 429}
		}
		return []int{413}
	}
	out := []int{400, 401, 403}
	if strings.Contains(op.path, "{") {
		out = append(out, 404)
	}
	if op.command || op.method == "POST" && !slices.Contains(readPosts, ginPath(op.path)) {
		out = append(out, 409)
	}
	if op.method == "PATCH" || op.method == "DELETE" && op.command {
		out = append(out, 412)
	}
	out = append(out, 413)
	if op.body != "" {
		out = append(out, 415)
	}
	out = append(out, 422, 429)
	if op.command || readsProjections(op.path) || op.method == "POST" || strings.HasPrefix(op.path, "/v1/admin/projections") {
		out = append(out, 503)
	}
	return out
}

// openAPIDocument is the OpenAPI 3 document of the API, as JSON.
func openAPIDocument() ([]byte, error) {
	doc, err := openAPI()
	if err != nil {
		return nil, err
	}
	return json.Marshal(doc)
}

// openAPI builds the OpenAPI 3 document of the API.
func openAPI() (map[string]any, error) {
	bodySchemas, err := schemas()
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	problemJSON := map[string]any{"application/problem+json": map[string]any{"schema": ref("Problem")}}
	paths := map[string]any{}
	for _, op := range operations {
		item, _ := paths[op.path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[op.path] = item
		}
		o := map[string]any{
			"summary":     op.summary,
			"tags":        []string{op.tag},
			"operationId": op.id,
		}
		if slices.Contains(publicPaths, op.path) {
			o["security"] = []any{}
		}
		if params := parameters(op); len(params) > 0 {
			o["parameters"] = params
		}
		if op.body != "" {
			o["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": ref(op.body)}}}
		}
		responses := map[string]any{"default": map[string]any{"description": "an error not listed above", "content": problemJSON}}
		ok := map[string]any{"description": "success"}
		if op.schema != "" {
			content := map[string]any{}
			switch op.schema {
			case "EventStream":
				content["text/event-stream"] = map[string]any{"schema": ref(op.schema)}
			case "Metrics":
				content["text/plain"] = map[string]any{"schema": ref(op.schema)}
			case "HTML":
				content["text/html"] = map[string]any{"schema": map[string]any{"type": "string"}}
			case "Script":
				content["text/javascript"] = map[string]any{"schema": map[string]any{"type": "string"}}
			default:
				content["application/json"] = map[string]any{"schema": ref(op.schema)}
			}
			switch op.id {
			case "listEvents":
				content["application/x-ndjson"] = map[string]any{"schema": map[string]any{"type": "string", "description": "one event (as in items) a line, the whole log from after on"}}
			case "getContext", "postContext":
				content["text/plain"] = map[string]any{"schema": map[string]any{"type": "string", "description": "with format=text: the window as prompt text"}}
			}
			ok["content"] = content
		}
		responses[strconv.Itoa(op.status)] = ok
		if op.command {
			responses["202"] = map[string]any{"description": "accepted; the query tables do not include the change yet", "content": map[string]any{"application/json": map[string]any{"schema": ref("Accepted")}}}
		}
		for _, st := range errorStatuses(op) {
			responses[strconv.Itoa(st)] = map[string]any{"$ref": "#/components/responses/" + errorName(st)}
		}
		if op.id == "ready" {
			responses["503"] = map[string]any{"description": "not ready: Postgres does not answer or a projection has stopped", "content": map[string]any{"application/json": map[string]any{"schema": ref("Ready")}}}
		}
		o["responses"] = responses
		item[strings.ToLower(op.method)] = o
	}
	errorResponses := map[string]any{}
	for st, why := range errorAnswers {
		errorResponses[errorName(st)] = map[string]any{"description": why, "content": problemJSON}
	}
	docSchemas := map[string]any{
		"Object":      map[string]any{"type": "object", "additionalProperties": true},
		"Metrics":     map[string]any{"type": "string", "description": "the process's metrics in the Prometheus text format: arq_http_*, arq_projection_*, arq_log_head_position, arq_db_pool_*, go_* and process_*"},
		"EventStream": map[string]any{"type": "string", "description": "text/event-stream: each event has id (its cursor), event (its type) and data (the event as JSON)"},
	}
	for name, s := range bodySchemas {
		docSchemas[name] = s
	}
	tags := []any{}
	for _, t := range []struct{ name, description string }{
		{"health", "Liveness, readiness, metrics and this document"},
		{"stats", "What the store holds"},
		{"users", "The people an assistant serves"},
		{"sessions", "Conversations"},
		{"messages", "What was said in a session"},
		{"memories", "What the assistant learned"},
		{"context", "Context windows and the snapshots of what an assistant saw"},
		{"live", "Server-Sent Events"},
		{"audit", "The event log, histories and proofs that it is intact"},
		{"admin", "Keys, tenants and projection rebuilds"},
	} {
		tags = append(tags, map[string]any{"name": t.name, "description": t.description})
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{"title": "ARQ", "version": version.Release,
			"license": map[string]any{"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
			"description": "Memory and context store for AI assistants, event-sourced on PostgreSQL. HEAD is answered wherever GET is, without the body. " +
				"Every answer carries X-Request-ID, the server's own id of the request (the request_id of problems, history entries and logs, the correlation_id of events); " +
				"a caller's X-Request-ID is recorded apart (client_request_id) and echoed as X-Client-Request-ID. " +
				"Requests are rate limited per key, and per client address with a missing or wrong key: answers carry RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset, " +
				"and a request over the limit is 429 problem+json (rate-limited) with Retry-After. " +
				"The bearer credential is the admin key, an API key, or a session's token. Every key acts in one tenant and reaches that tenant's data alone: " +
				"another tenant's id answers 404, as an unknown one. A key narrowed to one user reaches that user's alone, and is 403 on the routes over the whole tenant " +
				"(listing or creating users, the event feed and stream, stats, session validation, key management). " +
				"A session's token may append and read its own session's messages and context, and read the session: any other route is 403. " +
				"A command answers once the query tables hold its change (read-your-writes), with X-Arq-Position; a read given that position in X-Arq-Min-Position waits for it. " +
				"Assistants reach the same API over the Model Context Protocol: streamable HTTP at /mcp, with the same keys, or `arq mcp` over stdio."},
		"servers": []any{map[string]any{"url": "/", "description": "the arq server that serves this document"}},
		"tags":    tags,
		"paths":   paths,
		"components": map[string]any{
			"schemas":         docSchemas,
			"responses":       errorResponses,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer", "description": "the admin key, an API key or a session's token"}},
		},
		"security": []any{map[string]any{"bearer": []string{}}},
	}, nil
}

// parameters are the path, query and header parameters the document lists
// for op. The query parameters are also the only ones the route accepts
// (see KnownQuery), so the document and the check cannot drift apart.
func parameters(op operation) []any {
	var params []any
	if strings.Contains(op.path, "{stream}") {
		params = append(params, map[string]any{"name": "stream", "in": "path", "required": true, "schema": map[string]any{"type": "string", "description": "stream id, e.g. memory-<ULID>"}})
	}
	if strings.Contains(op.path, "{tenant}") {
		params = append(params, map[string]any{"name": "tenant", "in": "path", "required": true, "schema": map[string]any{"type": "string", "description": "a tenant's id"}})
	}
	if strings.Contains(op.path, "{size}") {
		params = append(params, map[string]any{"name": "size", "in": "path", "required": true, "schema": map[string]any{"type": "integer", "minimum": 1}, "description": "the log's size (events) at the checkpoint"})
	}
	switch op.path {
	case "/v1/log/consistency":
		params = append(params,
			map[string]any{"name": "from", "in": "query", "schema": map[string]any{"type": "integer", "minimum": 0}, "description": "the older size; default: the latest checkpoint's"},
			map[string]any{"name": "to", "in": "query", "schema": map[string]any{"type": "integer", "minimum": 0}, "description": "the newer size; default: the latest checkpoint's"})
	case "/v1/events/{id}/proof":
		params = append(params, map[string]any{"name": "size", "in": "query", "schema": map[string]any{"type": "integer", "minimum": 1}, "description": "the log's size to prove the event in; default: the latest checkpoint's, which the answer carries"})
	}
	if strings.Contains(op.path, "{name}") {
		params = append(params, map[string]any{"name": "name", "in": "path", "required": true, "schema": map[string]any{"type": "string", "description": "a projection's name"}})
	}
	if strings.Contains(op.path, "{id}") {
		params = append(params, map[string]any{"name": "id", "in": "path", "required": true, "schema": map[string]any{"type": "string", "description": "ULID"}})
	}
	if op.list {
		params = append(params,
			map[string]any{"name": "cursor", "in": "query", "schema": map[string]any{"type": "string"}, "description": "next_cursor of the previous page"},
			map[string]any{"name": "limit", "in": "query", "schema": map[string]any{"type": "integer", "minimum": 1, "maximum": 100, "default": 20}})
	}
	if op.path == "/v1/users" && op.method == "GET" {
		params = append(params, map[string]any{"name": "external_id", "in": "query", "schema": map[string]any{"type": "string"},
			"description": "only the user who holds this external id (the client's own id for them)"})
	}
	if op.path == "/v1/users/{id}/memories" && op.method == "GET" {
		for _, q := range []struct{ name, description string }{
			{"type", "working, episodic, semantic or procedural; repeatable or comma separated"},
			{"tag", "only memories with this tag"},
			{"session_id", "only memories from this session"},
			{"min_importance", "only memories at least this important (0 to 1)"},
			{"created_before", "only memories created before this RFC 3339 time"},
			{"created_after", "only memories created after this RFC 3339 time"},
			{"metadata", "key=value: only memories whose metadata has it; repeatable"},
			{"q", "full text: only memories matching every word"},
		} {
			params = append(params, map[string]any{"name": q.name, "in": "query", "schema": map[string]any{"type": "string"}, "description": q.description})
		}
	}
	if op.path == "/v1/messages/{id}" && op.method == "DELETE" {
		params = append(params, map[string]any{"name": "reason", "in": "query", "schema": map[string]any{"type": "string"}, "description": "why the message is redacted, kept in its event"})
	}
	if op.path == "/v1/messages/{id}" && op.method == "DELETE" {
		params = append(params, map[string]any{"name": "cascade", "in": "query", "schema": map[string]any{"type": "string", "enum": []string{"derived"}},
			"description": "derived: first delete (with erase=true: erase) every memory an extraction stored from this message, never a memory a client stored, even one an extraction later updated from it. " +
				"A redaction deletes the live ones in its own transaction: all or nothing, and If-Match (the message's) is checked with it, so a stale one deletes nothing. " +
				"An erasure erases each, also one deleted or superseded since, before the message: a failure midway is finished by erasing again"})
	}
	if (op.path == "/v1/messages/{id}" || op.path == "/v1/memories/{id}") && op.method == "DELETE" {
		params = append(params, map[string]any{"name": "erase", "in": "query", "schema": map[string]any{"type": "boolean", "default": false},
			"description": "erase for good instead: unconditional (no If-Match), answered once complete (503 erasure-pending when the projections lag: erase again); erasing again answers the same"})
	}
	if op.method == "GET" && strings.Count(op.path, "/") == 3 && strings.HasSuffix(op.path, "/{id}") && op.path != "/v1/context-snapshots/{id}" {
		params = append(params,
			map[string]any{"name": "version", "in": "query", "schema": map[string]any{"type": "integer", "minimum": 1}, "description": "the entity as it was at this version, folded from the log"},
			map[string]any{"name": "as_of", "in": "query", "schema": map[string]any{"type": "string", "format": "date-time"}, "description": "the entity as it was at this time, folded from the log"})
	}
	if op.path == "/v1/events" || op.path == "/v1/users/{id}/audit" {
		for _, q := range []string{"after", "limit", "type", "stream_type", "stream", "from", "to"} {
			params = append(params, map[string]any{"name": q, "in": "query", "schema": map[string]any{"type": "string"}})
		}
	}
	switch op.path {
	case "/v1/events/stream":
		for _, q := range []string{"after", "type", "stream_type"} {
			params = append(params, map[string]any{"name": q, "in": "query", "schema": map[string]any{"type": "string"}})
		}
	case "/v1/sessions/{id}/stream":
		params = append(params, map[string]any{"name": "after", "in": "query", "schema": map[string]any{"type": "string"}})
	}
	if op.path == "/v1/sessions/{id}/context" && op.method == "GET" {
		params = append(params,
			map[string]any{"name": "max_tokens", "in": "query", "description": "at most the server's ARQ_MAX_CONTEXT_TOKENS (128000 by default); more is 422", "schema": map[string]any{"type": "integer", "minimum": 1, "maximum": 1000000, "default": 4096}},
			map[string]any{"name": "query", "in": "query", "schema": map[string]any{"type": "string"}, "description": "what memories are ranked against (its first 64 distinct words); default: the latest user message"},
			map[string]any{"name": "summary_share", "in": "query", "schema": map[string]any{"type": "number", "minimum": 0, "maximum": 1, "default": 0.2},
				"description": "the part of the budget the summary gets first; 0 leaves it out. With memory_share at most 1"},
			map[string]any{"name": "memory_share", "in": "query", "schema": map[string]any{"type": "number", "minimum": 0, "maximum": 1, "default": 0.3},
				"description": "the part of the budget memories get first; 0 leaves them out. With summary_share at most 1"})
	}
	if op.path == "/v1/sessions/{id}/context" {
		params = append(params, map[string]any{"name": "format", "in": "query", "schema": map[string]any{"type": "string", "enum": []string{"json", "text"}, "default": "json"}, "description": "text: the window as ready-to-paste prompt text (text/plain)"})
	}
	if (op.method == "GET" || slices.Contains(readPosts, ginPath(op.path))) && strings.HasPrefix(op.path, "/v1/") && readsProjections(op.path) {
		params = append(params, map[string]any{"name": headerMinPosition, "in": "header", "schema": map[string]any{"type": "string"},
			"description": "wait (bounded) until projections reached this X-Arq-Position, else 503"})
	}
	if op.method == "PATCH" || op.method == "DELETE" && op.command {
		params = append(params, map[string]any{"name": "If-Match", "in": "header", "schema": map[string]any{"type": "string"}, "description": "the ETag (version) last seen; 412 when stale"})
	}
	if op.method == "POST" && !slices.Contains(readPosts, ginPath(op.path)) {
		params = append(params, map[string]any{"name": "Idempotency-Key", "in": "header", "schema": map[string]any{"type": "string"}, "description": "a retry with the same key and body returns the first answer"})
	}
	if op.command {
		params = append(params, map[string]any{"name": "Prefer", "in": "header", "schema": map[string]any{"type": "string", "enum": []string{"respond-async"}}, "description": "answer 202 at once instead of waiting for the query tables"})
	}
	return params
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

func serveOpenAPI(doc []byte) gin.HandlerFunc {
	return func(c *gin.Context) { c.Data(http.StatusOK, "application/json; charset=utf-8", doc) }
}

// readsProjections tells whether a read route reads the query tables (and
// so honours X-Arq-Min-Position) rather than the log itself or the
// server's own state.
func readsProjections(path string) bool {
	switch {
	case strings.HasSuffix(path, "/history"), strings.HasSuffix(path, "/provenance"), strings.HasSuffix(path, "/audit"), strings.HasSuffix(path, "/stream"),
		strings.HasSuffix(path, "/verify"), strings.HasPrefix(path, "/v1/admin/"), path == "/v1/events", path == "/v1/stats":
		return false
	}
	return true
}

// queryParameters maps each /v1 route, as the router names it ("GET
// /v1/users/:id"), to the query parameters its document lists. Routes
// outside /v1 (health, metrics, this document) are not the API's
// resources and are left out: probes and scrapers may add what they like.
func queryParameters() map[string][]string {
	out := map[string][]string{}
	for _, op := range operations {
		if !strings.HasPrefix(op.path, "/v1/") {
			continue
		}
		names := []string{}
		for _, p := range parameters(op) {
			if p := p.(map[string]any); p["in"] == "query" {
				names = append(names, p["name"].(string))
			}
		}
		out[op.method+" "+ginPath(op.path)] = names
	}
	return out
}
