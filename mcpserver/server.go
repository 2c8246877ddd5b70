// Package mcpserver serves ARQ to AI assistants over the Model Context
// Protocol: tools to remember, recall and forget memories, add messages
// and read a session's context window, and that window as a resource.
//
// It is a second face of the REST API, not a second API: every tool call
// is served by the equivalent REST request, sent through the API's own
// http.Handler in-process, with the caller's credential. Authentication,
// tenant scopes, validation, rate limits, read-your-writes and their
// errors are the REST API's; a problem+json answer becomes a tool error
// whose text and structured content carry the problem.
package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/arq-memory/arq/api"
)

// Options configure a Server.
type Options struct {
	// Key is the credential (an API key or a session's token) sent with
	// every REST request when the MCP client's own request carries none:
	// over stdio, always. Empty sends none, which an open API accepts.
	Key string
	// Version names the build, told to clients when they connect.
	Version string
	// Log receives the server's own messages; nil discards them.
	Log *slog.Logger
	// MaxBodyBytes bounds a request's body at /mcp, as the API's
	// (ARQ_MAX_BODY_BYTES); 0 leaves the SDK's bound.
	MaxBodyBytes int64
}

// Server is ARQ's MCP server over one REST API handler.
type Server struct {
	api     http.Handler
	key     string
	maxBody int64
	log     *slog.Logger
	mcp     *mcp.Server
}

// New returns the MCP server whose tools and resources are served by the
// REST API handler api (what api.New returns).
func New(api http.Handler, opt Options) *Server {
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{api: api, key: opt.Key, log: log, maxBody: opt.MaxBodyBytes}
	s.mcp = mcp.NewServer(&mcp.Implementation{Name: "arq", Title: "ARQ memory", Version: opt.Version}, &mcp.ServerOptions{
		Instructions: instructions,
		Logger:       sdkLog(log),
	})
	s.addTools()
	s.addResources()
	return s
}

// instructions tell an assistant how the tools fit together.
const instructions = "ARQ keeps an assistant's memory of its users. Find or register the user " +
	"(user tool, by your own id for them), start a session (start_session), add each message " +
	"(add_message), and read the session's context window (context) before answering: it holds " +
	"a summary, the memories relevant now and the newest messages within a token budget. Store " +
	"what is worth keeping with remember, search it with recall, correct it with update_memory, " +
	"remove it with forget_memory; memory_history shows every change to a memory."

// Run serves the MCP session on t (e.g. &mcp.StdioTransport{}) until the
// client disconnects or ctx ends.
func (s *Server) Run(ctx context.Context, t mcp.Transport) error {
	if err := s.mcp.Run(ctx, t); err != nil && ctx.Err() == nil {
		return fmt.Errorf("mcp session: %w", err)
	}
	return nil
}

// restRequest is one request to the REST API on behalf of a tool call.
type restRequest struct {
	method, path string
	// body, when not nil, is sent as JSON.
	body   []byte
	header http.Header
}

// answer is the REST API's answer to a restRequest.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// problemText is a problem as one paragraph for an assistant to read.
func problemText(p api.Problem) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%d)", p.Title, p.Status)
	if p.Detail != "" {
		b.WriteString(": " + p.Detail)
	}
	for _, f := range p.Errors {
		fmt.Fprintf(&b, "\n- %s: %s", f.Field, f.Message)
	}
	return b.String()
}

// extra is what a tool call or resource read carries of its HTTP request
// (nil over stdio).
type extra = *mcp.RequestExtra

// send serves r through the REST API in-process, with the credential of
// the MCP request (its Authorization header) or else the server's key.
func (s *Server) send(ctx context.Context, from extra, r restRequest) (answer, error) {
	var body io.Reader = http.NoBody // as a server's request has
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.path, body)
	if err != nil {
		return answer{}, fmt.Errorf("build %s %s: %w", r.method, r.path, err)
	}
	// Over /mcp, the request is the caller's, from its address, and
	// counted against its limit by the API (Handler, api.Through) already;
	// over stdio, it is this process's own, and counts here.
	req.RemoteAddr = "127.0.0.1:0"
	if from != nil && from.Header != nil {
		if addr := from.Header.Get(remoteHeader); addr != "" {
			req.RemoteAddr = addr
			req = api.Counted(req)
		}
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if auth := s.credential(from); auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if from != nil && from.Header != nil {
		if id := from.Header.Get("X-Request-Id"); id != "" {
			req.Header.Set("X-Request-Id", id)
		}
	}
	rec := httptest.NewRecorder()
	s.api.ServeHTTP(rec, req)
	res := rec.Result()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return answer{}, fmt.Errorf("read answer to %s %s: %w", r.method, r.path, err)
	}
	return answer{status: res.StatusCode, header: res.Header, body: b}, nil
}

// credential is the Authorization header an inner request carries: the
// MCP request's own, else the configured key.
func (s *Server) credential(from extra) string {
	if from != nil && from.Header != nil {
		if h := from.Header.Get("Authorization"); h != "" {
			return h
		}
	}
	if s.key != "" {
		return "Bearer " + s.key
	}
	return ""
}

// isProblem tells an error answer: a problem+json body, or any status
// but 2xx (a redirect, as from a proxy in front of a remote server, did
// not do what the tool asked).
func (a answer) isProblem() bool {
	mt, _, _ := mime.ParseMediaType(a.header.Get("Content-Type"))
	return a.status < 200 || a.status >= 300 || mt == "application/problem+json"
}

// problem decodes the answer's problem; a body that is none becomes one
// from the status alone.
func (a answer) problem() api.Problem {
	var p api.Problem
	if err := json.Unmarshal(a.body, &p); err != nil || p.Status == 0 {
		p = api.Problem{Title: http.StatusText(a.status), Status: a.status, Detail: strings.TrimSpace(string(a.body))}
	}
	return p
}

// errorResult is a tool error carrying the problem: its text for the
// assistant, the problem itself as structured content.
func errorResult(p api.Problem) *mcp.CallToolResult {
	return &mcp.CallToolResult{
		IsError:           true,
		Content:           []mcp.Content{&mcp.TextContent{Text: problemText(p)}},
		StructuredContent: p,
	}
}

// result is a tool's answer: a short text and the REST JSON as
// structured content, set here rather than returned as the tool's output
// so that the SDK does not encode it once more.
func result(text string, body []byte) (*mcp.CallToolResult, any) {
	res := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}
	if len(body) > 0 { // 204: nothing to structure
		res.StructuredContent = json.RawMessage(body)
	}
	return res, nil
}
