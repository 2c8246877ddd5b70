package mcpserver

import (
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/arq-memory/arq/api"
)

// Path is where the streamable HTTP transport is served.
const Path = "/mcp"

// remoteHeader carries, from Handler to the tool calls of the request, the
// caller's address, once the API has counted the request: a
// request's own copy is removed first, so no client can set it.
const remoteHeader = "X-Arq-Mcp-Remote-Addr"

// Handler serves the streamable HTTP transport, each request through the
// REST API's own middleware (api.Through): authenticated, counted against
// its key's limit, logged and measured with the MCP answer's status; a
// request without a valid credential (when the API has keys) is answered
// as the API answers it, 401 (or 429 past the limit) with a problem,
// before any MCP exchange. Each tool call then sends that request's
// credential with its REST request, which the API checks again with its
// scopes, and does not count again.
//
// It is stateless: each request is served on its own, with no session
// kept between requests, so any server of a deployment can answer any
// request.
func (s *Server) Handler() http.Handler {
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.mcp },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true, Logger: sdkLog(s.log),
			MaxRequestBodyBytes: s.bodyLimit(),
			// The SDK refuses a request that reaches a loopback address
			// under another host's name, against DNS rebinding of an
			// unguarded local server. Here it would refuse every request
			// a reverse proxy on the same machine forwards, and guard
			// nothing the REST API beside it leaves open: /mcp is behind
			// the API's keys, and as open as REST when it has none.
			DisableLocalhostProtection: true})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			s.api.ServeHTTP(w, r) // a CORS preflight, answered as the API's are
			return
		}
		// The caller's address, for the REST requests of its tool calls.
		r.Header.Del(remoteHeader)
		r.Header.Set(remoteHeader, r.RemoteAddr)
		s.api.ServeHTTP(w, api.Through(r, h))
	})
}

// Front serves Path with mcp and every other path with api: the API with
// its MCP face, for one http.Server.
func Front(api, mcp http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == Path {
			mcp.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// bodyLimit is the largest request /mcp reads: the API's body limit and
// room for the JSON-RPC envelope around a tool call's arguments; 0 (the
// SDK's own) when the server was given none.
func (s *Server) bodyLimit() int64 {
	if s.maxBody <= 0 {
		return 0
	}
	return s.maxBody + 64<<10
}
