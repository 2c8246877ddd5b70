package mcpserver

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// contextURI is the template of a session's context window as a resource.
const contextURI = "arq://sessions/{id}/context"

func (s *Server) addResources() {
	s.mcp.AddResourceTemplate(&mcp.ResourceTemplate{
		Name: "session-context", Title: "A session's context window", URITemplate: contextURI, MIMEType: "text/plain",
		Description: "The session's context window within the default budget (4096 tokens), as text ready to paste into a prompt: " +
			"the summary so far, the memories relevant now, the newest messages.",
	}, s.readContext)
}

// readContext reads arq://sessions/{id}/context as GET
// /v1/sessions/{id}/context?format=text.
func (s *Server) readContext(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	uri := req.Params.URI
	id, ok := strings.CutPrefix(uri, "arq://sessions/")
	if id, ok = strings.CutSuffix(id, "/context"); !ok || id == "" || strings.Contains(id, "/") {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	a, err := s.send(ctx, req.Extra, restRequest{method: http.MethodGet, path: "/v1/sessions/" + url.PathEscape(id) + "/context?format=text"})
	if err != nil {
		return nil, err
	}
	if a.isProblem() {
		if a.status == http.StatusNotFound {
			return nil, mcp.ResourceNotFoundError(uri)
		}
		return nil, errors.New(a.problem().String())
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, MIMEType: "text/plain", Text: string(a.body)}}}, nil
}
