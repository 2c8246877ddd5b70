package mcpserver

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// contextURI is the template of a session's context window as a resource;
// its query is the REST read's (the budget and what memories are ranked
// against).
const contextURI = "arq://sessions/{id}/context{?max_tokens,query,summary_share,memory_share}"

func (s *Server) addResources() {
	s.mcp.AddResourceTemplate(&mcp.ResourceTemplate{
		Name: "session-context", Title: "A session's context window", URITemplate: contextURI, MIMEType: "text/plain",
		Description: "The session's context window within a budget (max_tokens, 4096 by default), as text ready to paste into a prompt: " +
			"the summary so far, the memories relevant now, the newest messages.",
	}, s.readContext)
}

// readContext reads arq://sessions/{id}/context?... as GET
// /v1/sessions/{id}/context?...&format=text: its query parameters are
// the REST read's, checked by it.
func (s *Server) readContext(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	uri := req.Params.URI
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "arq" || u.Host != "sessions" {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	id, ok := strings.CutSuffix(strings.TrimPrefix(u.Path, "/"), "/context")
	if !ok || id == "" || strings.Contains(id, "/") {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	q := u.Query()
	q.Set("format", "text")
	a, err := s.send(ctx, req.Extra, restRequest{method: http.MethodGet, path: "/v1/sessions/" + url.PathEscape(id) + "/context?" + q.Encode()})
	if err != nil {
		return nil, err
	}
	if a.isProblem() {
		if a.status == http.StatusNotFound {
			return nil, mcp.ResourceNotFoundError(uri)
		}
		return nil, errors.New(problemText(a.problem()))
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, MIMEType: "text/plain", Text: string(a.body)}}}, nil
}
