package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/arq-memory/arq/api"
	"github.com/arq-memory/arq/domain"
)

// The tools' inputs. Every field is optional in their schemas: what is
// required, and every other rule, is the REST API's to check, so that a
// tool and its REST request refuse the same input with the same problem.
// The fields besides the ids (and expected_version) are sent as the REST
// request's JSON body as given.
type (
	userInput struct {
		ExternalID string         `json:"external_id,omitempty" jsonschema:"your own id for the user (required); the user holding it is found, or registered"`
		Name       string         `json:"name,omitempty" jsonschema:"the user's name; required to register a new user"`
		Email      string         `json:"email,omitempty" jsonschema:"the user's email, when registering"`
		Metadata   map[string]any `json:"metadata,omitempty" jsonschema:"free-form JSON object, when registering"`
	}
	startSessionInput struct {
		UserID     string         `json:"user_id,omitempty" jsonschema:"the user's id (a ULID; required)"`
		Title      string         `json:"title,omitempty" jsonschema:"a title for the session"`
		Metadata   map[string]any `json:"metadata,omitempty" jsonschema:"free-form JSON object"`
		TTLSeconds *int           `json:"ttl_seconds,omitempty" jsonschema:"the session expires this many seconds after its start; none: never"`
		idempotent
	}
	addMessageInput struct {
		SessionID string         `json:"session_id,omitempty" jsonschema:"the session's id (required)"`
		Role      string         `json:"role,omitempty" jsonschema:"user, assistant, system or tool (required)"`
		Content   string         `json:"content,omitempty" jsonschema:"the message's text (required)"`
		Name      string         `json:"name,omitempty" jsonschema:"the speaker's name, e.g. a tool's"`
		Metadata  map[string]any `json:"metadata,omitempty" jsonschema:"free-form JSON object"`
		idempotent
	}
	rememberInput struct {
		UserID          string         `json:"user_id,omitempty" jsonschema:"the user's id (required)"`
		Type            string         `json:"type,omitempty" jsonschema:"working, episodic, semantic or procedural (required)"`
		Content         string         `json:"content,omitempty" jsonschema:"what to remember, in plain words (required)"`
		Importance      *float64       `json:"importance,omitempty" jsonschema:"0 to 1; default 0.5"`
		Tags            []string       `json:"tags,omitempty" jsonschema:"labels to filter by"`
		Metadata        map[string]any `json:"metadata,omitempty" jsonschema:"free-form JSON object"`
		SourceSessionID string         `json:"source_session_id,omitempty" jsonschema:"the session it was learnt in"`
		SourceMessageID string         `json:"source_message_id,omitempty" jsonschema:"the message it was learnt from"`
		TTLSeconds      *int           `json:"ttl_seconds,omitempty" jsonschema:"forget it after this many seconds"`
		ExpiresAt       string         `json:"expires_at,omitempty" jsonschema:"forget it at this RFC 3339 time"`
		idempotent
	}
	recallInput struct {
		UserID        string            `json:"user_id,omitempty" jsonschema:"the user's id (required)"`
		Query         string            `json:"query,omitempty" jsonschema:"what to look for, in words"`
		Types         []string          `json:"types,omitempty" jsonschema:"only memories of these types"`
		Tag           string            `json:"tag,omitempty" jsonschema:"only memories with this tag"`
		SessionID     string            `json:"session_id,omitempty" jsonschema:"only memories from this session"`
		MinImportance *float64          `json:"min_importance,omitempty" jsonschema:"only memories at least this important (0 to 1)"`
		CreatedBefore string            `json:"created_before,omitempty" jsonschema:"only memories created before this RFC 3339 time"`
		CreatedAfter  string            `json:"created_after,omitempty" jsonschema:"only memories created after this RFC 3339 time"`
		Metadata      map[string]string `json:"metadata,omitempty" jsonschema:"only memories whose metadata holds each of these keys and values"`
		Limit         *int              `json:"limit,omitempty" jsonschema:"at most this many hits"`
	}
	contextInput struct {
		SessionID    string   `json:"session_id,omitempty" jsonschema:"the session's id (required)"`
		MaxTokens    *int     `json:"max_tokens,omitempty" jsonschema:"the budget in tokens; default 4096"`
		Query        string   `json:"query,omitempty" jsonschema:"what memories are ranked against; default: the latest user message"`
		SummaryShare *float64 `json:"summary_share,omitempty" jsonschema:"the part of the budget the summary gets first (0 to 1; default 0.2)"`
		MemoryShare  *float64 `json:"memory_share,omitempty" jsonschema:"the part of the budget memories get first (0 to 1; default 0.3)"`
	}
	updateMemoryInput struct {
		MemoryID        string         `json:"memory_id,omitempty" jsonschema:"the memory's id (required)"`
		ExpectedVersion *int           `json:"expected_version,omitempty" jsonschema:"the version last seen (1 or more): the update is refused if the memory changed since"`
		Content         *string        `json:"content,omitempty" jsonschema:"the new text"`
		Importance      *float64       `json:"importance,omitempty" jsonschema:"0 to 1"`
		Tags            []string       `json:"tags,omitempty" jsonschema:"the new labels (replace the old)"`
		Metadata        map[string]any `json:"metadata,omitempty" jsonschema:"the new metadata (replaces the old)"`
		TTLSeconds      *int           `json:"ttl_seconds,omitempty" jsonschema:"forget it this many seconds from now"`
		ExpiresAt       string         `json:"expires_at,omitempty" jsonschema:"forget it at this RFC 3339 time"`
		ClearExpiry     *bool          `json:"clear_expiry,omitempty" jsonschema:"keep it for good"`
	}
	forgetMemoryInput struct {
		MemoryID        string `json:"memory_id,omitempty" jsonschema:"the memory's id (required)"`
		ExpectedVersion *int   `json:"expected_version,omitempty" jsonschema:"the version last seen (1 or more): refused if the memory changed since"`
		Erase           bool   `json:"erase,omitempty" jsonschema:"erase it for good (unreadable everywhere, its history too) instead of deleting it"`
	}
	memoryHistoryInput struct {
		MemoryID string `json:"memory_id,omitempty" jsonschema:"the memory's id (required)"`
	}
	memoryProvenanceInput struct {
		MemoryID string `json:"memory_id,omitempty" jsonschema:"the memory's id (required)"`
	}
)

// idempotent is the argument of the tools that create something: a
// retry with the same key and arguments answers what the first call did
// instead of creating it twice (the REST request's Idempotency-Key).
type idempotent struct {
	IdempotencyKey string `json:"idempotency_key,omitempty" jsonschema:"any unique string of yours; a retry with the same key and arguments creates nothing more and answers as the first call"`
}

// call is a tool call turned into its REST request.
type call struct {
	method string
	// path is the REST path; pathIDs fill its %s from the arguments of
	// these names, which are not sent in the body.
	path    string
	pathIDs []string
	// body sends the other arguments as the JSON body.
	body bool
	// query is added to the path, when not empty.
	query url.Values
	// version, when given, is sent as If-Match; below 1 it is refused
	// as the field it came from.
	version *int
}

// forward sends the tool call's REST request and returns its answer, or a
// tool error for a problem.
func (s *Server) forward(ctx context.Context, req *mcp.CallToolRequest, c call) (answer, *mcp.CallToolResult, error) {
	args := map[string]json.RawMessage{}
	if len(req.Params.Arguments) > 0 {
		if err := json.Unmarshal(req.Params.Arguments, &args); err != nil {
			return answer{}, nil, fmt.Errorf("decode arguments: %w", err)
		}
	}
	ids := make([]any, len(c.pathIDs))
	for i, name := range c.pathIDs {
		var id string
		if raw, ok := args[name]; ok {
			_ = json.Unmarshal(raw, &id) // the schema made it a string
		}
		if id == "" {
			return answer{}, invalid(name, "is required"), nil
		}
		if strings.ContainsAny(id, "/?#") {
			// No resource has such an id; sent on, it would name another
			// route (or be redirected) instead.
			return answer{}, errorResult(api.ProblemOf(fmt.Errorf("%w: no resource has the %s %q", domain.ErrNotFound, name, id))), nil
		}
		ids[i] = url.PathEscape(id)
		delete(args, name)
	}
	r := restRequest{method: c.method, path: fmt.Sprintf(c.path, ids...), header: http.Header{}}
	delete(args, "expected_version")
	if raw, ok := args["idempotency_key"]; ok {
		var key string
		_ = json.Unmarshal(raw, &key) // the schema made it a string
		if key != "" {
			r.header.Set("Idempotency-Key", key)
		}
		delete(args, "idempotency_key")
	}
	if len(c.query) > 0 {
		r.path += "?" + c.query.Encode()
	}
	if c.body {
		b, err := json.Marshal(args)
		if err != nil {
			return answer{}, nil, fmt.Errorf("encode body: %w", err)
		}
		r.body = b
	}
	if c.version != nil {
		if *c.version < 1 {
			return answer{}, invalid("expected_version", "must be 1 or more"), nil
		}
		r.header.Set("If-Match", `"`+strconv.Itoa(*c.version)+`"`)
	}
	a, err := s.send(ctx, req.Extra, r)
	if err != nil {
		return answer{}, nil, err
	}
	if a.isProblem() {
		return a, errorResult(a.problem()), nil
	}
	return a, nil, nil
}

// invalid is a tool error naming one wrong argument, as the API answers a
// wrong field (domain.ValidationError, 422).
func invalid(field, message string) *mcp.CallToolResult {
	v := &domain.ValidationError{}
	v.Add(field, "%s", message)
	return errorResult(api.ProblemOf(v))
}

// tool adds a tool whose call is one REST request; say makes the text of
// a successful answer from its JSON body.
func tool[In any](s *Server, t *mcp.Tool, plan func(In) call, say func(body []byte) string) {
	addTool(s, t, func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, any, error) {
		a, failed, err := s.forward(ctx, req, plan(in))
		if err != nil || failed != nil {
			return failed, nil, err
		}
		res, out := result(say(a.body), a.body)
		return res, out, nil
	})
}

// addTool adds a tool whose input schema is In's, each property of one
// type: an optional field is left out, never null, so the schema suits
// clients that take one type a property (a pointer or slice would be
// typed ["null", ...]).
func addTool[In any](s *Server, t *mcp.Tool, h mcp.ToolHandlerFor[In, any]) {
	schema, err := jsonschema.For[In](nil)
	if err != nil {
		panic(fmt.Sprintf("input schema of tool %s: %v", t.Name, err)) // a programming error, met at start
	}
	for _, p := range schema.Properties {
		if len(p.Types) == 2 && p.Types[0] == "null" {
			p.Type, p.Types = p.Types[1], nil
		}
	}
	t.InputSchema = schema
	mcp.AddTool(s.mcp, t, h)
}

func (s *Server) addTools() {
	s.addUserTool()
	tool(s, &mcp.Tool{Name: "start_session", Description: "Start a conversation session for a user; its id is what add_message and context take."},
		func(startSessionInput) call {
			return call{method: http.MethodPost, path: "/v1/users/%s/sessions", pathIDs: []string{"user_id"}, body: true}
		}, func(b []byte) string { return "Started session " + field(b, "id") + "." })
	tool(s, &mcp.Tool{Name: "add_message", Description: "Append a message (the user's, yours, a tool's) to a session."},
		func(addMessageInput) call {
			return call{method: http.MethodPost, path: "/v1/sessions/%s/messages", pathIDs: []string{"session_id"}, body: true}
		}, func(b []byte) string { return "Added message " + field(b, "id") + " (#" + field(b, "seq") + ")." })
	tool(s, &mcp.Tool{Name: "remember", Description: "Store a memory about a user: a fact (semantic), an event (episodic), a how-to (procedural) or a note for now (working)."},
		func(rememberInput) call {
			return call{method: http.MethodPost, path: "/v1/users/%s/memories", pathIDs: []string{"user_id"}, body: true}
		}, func(b []byte) string { return "Remembered as memory " + field(b, "id") + "." })
	tool(s, &mcp.Tool{Name: "recall", Description: "Search a user's memories, most relevant first.", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}},
		func(recallInput) call {
			return call{method: http.MethodPost, path: "/v1/users/%s/memories/search", pathIDs: []string{"user_id"}, body: true}
		}, hitsText)
	s.addContextTool()
	tool(s, &mcp.Tool{Name: "update_memory", Description: "Change a memory's text, importance, tags, metadata or expiry."},
		func(in updateMemoryInput) call {
			return call{method: http.MethodPatch, path: "/v1/memories/%s", pathIDs: []string{"memory_id"}, body: true, version: in.ExpectedVersion}
		}, func(b []byte) string {
			return "Updated memory " + field(b, "id") + " (version " + field(b, "version") + ")."
		})
	tool(s, &mcp.Tool{Name: "forget_memory", Description: "Delete a memory (its history stays), or with erase erase it for good.",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(true)}},
		func(in forgetMemoryInput) call {
			c := call{method: http.MethodDelete, path: "/v1/memories/%s", pathIDs: []string{"memory_id"}, version: in.ExpectedVersion}
			if in.Erase {
				c.query = url.Values{"erase": {"true"}}
			}
			return c
		}, func([]byte) string { return "Forgotten." })
	tool(s, &mcp.Tool{Name: "memory_history", Description: "Every change to a memory: when, by whom, what changed.", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}},
		func(memoryHistoryInput) call {
			return call{method: http.MethodGet, path: "/v1/memories/%s/history", pathIDs: []string{"memory_id"}}
		}, func(b []byte) string { return historyText(b) })
	tool(s, &mcp.Tool{Name: "memory_provenance", Description: "Where a memory came from, when ARQ extracted it from a conversation: each decision (add, update, supersede) with the model, its reason, and the messages it read as they were then.", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}},
		func(memoryProvenanceInput) call {
			return call{method: http.MethodGet, path: "/v1/memories/%s/provenance", pathIDs: []string{"memory_id"}}
		}, func(b []byte) string { return provenanceText(b) })
}

// addContextTool adds the context tool: the REST window as structured
// content, and as text ready to paste into a prompt (api.ContextText, as
// GET ...?format=text renders it).
func (s *Server) addContextTool() {
	addTool(s, &mcp.Tool{Name: "context", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
		Description: "A session's context window within a token budget: the summary so far, the memories relevant now, the newest messages. " +
			"The text answer is ready to paste into a prompt."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ contextInput) (*mcp.CallToolResult, any, error) {
			a, failed, err := s.forward(ctx, req, call{method: http.MethodPost, path: "/v1/sessions/%s/context", pathIDs: []string{"session_id"}, body: true})
			if err != nil || failed != nil {
				return failed, nil, err
			}
			text, err := api.ContextText(a.body)
			if err != nil {
				return nil, nil, err
			}
			res, out := result(text, a.body)
			return res, out, nil
		})
}

// addUserTool adds the user tool: the user holding an external id, found
// (GET /v1/users?external_id=) or else registered (POST /v1/users).
func (s *Server) addUserTool() {
	addTool(s, &mcp.Tool{Name: "user", Description: "Find the user you know by your own id for them (external_id), or register them (with a name) if ARQ does not know them yet. Returns their ARQ id, which the other tools take."},
		func(ctx context.Context, req *mcp.CallToolRequest, in userInput) (*mcp.CallToolResult, any, error) {
			find := func() ([]byte, *mcp.CallToolResult, error) {
				if in.ExternalID == "" {
					return nil, nil, nil
				}
				a, failed, err := s.forward(ctx, req, call{method: http.MethodGet, path: "/v1/users", query: url.Values{"external_id": {in.ExternalID}}})
				if err != nil || failed != nil {
					return nil, failed, err
				}
				var page struct {
					Items []json.RawMessage `json:"items"`
				}
				if err := json.Unmarshal(a.body, &page); err != nil {
					return nil, nil, fmt.Errorf("decode users: %w", err)
				}
				if len(page.Items) == 0 {
					return nil, nil, nil
				}
				return page.Items[0], nil, nil
			}
			found, failed, err := find()
			if err != nil || failed != nil {
				return failed, nil, err
			}
			if found != nil {
				res, out := result("Found user "+field(found, "id")+".", found)
				return res, out, nil
			}
			a, failed, err := s.forward(ctx, req, call{method: http.MethodPost, path: "/v1/users", body: true})
			if err != nil {
				return nil, nil, err
			}
			if failed != nil && a.status == http.StatusConflict {
				// Registered meanwhile by another call: that user.
				if found, _, err := find(); err == nil && found != nil {
					res, out := result("Found user "+field(found, "id")+".", found)
					return res, out, nil
				}
			}
			if failed != nil {
				return failed, nil, nil
			}
			res, out := result("Registered user "+field(a.body, "id")+".", a.body)
			return res, out, nil
		})
}

// field is a top-level field of a JSON object, as text.
func field(body []byte, name string) string {
	var o map[string]json.RawMessage
	if json.Unmarshal(body, &o) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(o[name], &s) == nil {
		return s
	}
	return string(o[name])
}

// hitsText lists a search's hits, one a line.
func hitsText(body []byte) string {
	var hits struct {
		Items []struct {
			ID      string  `json:"id"`
			Type    string  `json:"type"`
			Content string  `json:"content"`
			Score   float64 `json:"score"`
		} `json:"items"`
	}
	if json.Unmarshal(body, &hits) != nil || len(hits.Items) == 0 {
		return "No memory matches."
	}
	text := fmt.Sprintf("%d memories:", len(hits.Items))
	for _, h := range hits.Items {
		text += fmt.Sprintf("\n- %s (%s, score %.3f): %s", h.ID, h.Type, h.Score, h.Content)
	}
	return text
}

// historyText lists a memory's changes, one a line.
func historyText(body []byte) string {
	var h struct {
		Items []struct {
			Version    int    `json:"version"`
			EventType  string `json:"event_type"`
			RecordedAt string `json:"recorded_at"`
			Actor      string `json:"actor"`
		} `json:"items"`
	}
	if json.Unmarshal(body, &h) != nil {
		return "History read."
	}
	text := fmt.Sprintf("%d changes:", len(h.Items))
	for _, e := range h.Items {
		text += fmt.Sprintf("\n- version %d: %s at %s by %s", e.Version, e.EventType, e.RecordedAt, e.Actor)
	}
	return text
}

// provenanceText says, one decision a line, where a memory came from.
func provenanceText(body []byte) string {
	var p struct {
		Derivations []struct {
			Version  int    `json:"version"`
			Action   string `json:"action"`
			Model    string `json:"model"`
			Reason   string `json:"reason"`
			Messages []struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			} `json:"messages"`
		} `json:"derivations"`
	}
	if json.Unmarshal(body, &p) != nil {
		return "Provenance read."
	}
	if len(p.Derivations) == 0 {
		return "A client stored this memory; no extraction made or changed it."
	}
	text := fmt.Sprintf("%d decisions:", len(p.Derivations))
	for _, d := range p.Derivations {
		text += fmt.Sprintf("\n- version %d: %s by %s (%s), from %d messages", d.Version, d.Action, d.Model, d.Reason, len(d.Messages))
		for _, m := range d.Messages {
			text += fmt.Sprintf("\n    %s: %s", m.Role, m.Content)
		}
	}
	return text
}

func ptr[T any](v T) *T { return &v }
