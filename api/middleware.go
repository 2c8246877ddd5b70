package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"time"

	"github.com/gin-contrib/cors"
	"github.com/gin-gonic/gin"
	"github.com/oklog/ulid/v2"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/metrics"
	"github.com/arq-memory/arq/projections/readmodel"
)

const (
	requestIDKey       = "arq.request_id"
	clientRequestIDKey = "arq.client_request_id"
)

// headerClientRequestID echoes the caller's own X-Request-ID.
const headerClientRequestID = "X-Client-Request-ID"

// RequestID gives every request an id of the server's own, a ULID: the
// correlation id of the events it appends, the request_id of its log
// lines and problem bodies, and the X-Request-ID of its answer. A
// caller's X-Request-ID (1 to 128 printable ASCII characters; others are
// ignored) never takes its place, so no caller can forge the audit
// trail's request ids: it is kept apart as the client's request id,
// recorded in the log lines and the events' metadata and echoed as
// X-Client-Request-ID.
func RequestID(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		id := ulid.Make().String()
		c.Set(requestIDKey, id)
		c.Header("X-Request-ID", id)
		l := log.With("request_id", id)
		if client := c.GetHeader("X-Request-ID"); printable(client) {
			c.Set(clientRequestIDKey, client)
			c.Header(headerClientRequestID, client)
			l = l.With("client_request_id", client)
		}
		c.Set(loggerKey, l)
		c.Next()
	}
}

func printable(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// RequestIDFrom is the request's id.
func RequestIDFrom(c *gin.Context) string { return c.GetString(requestIDKey) }

// ClientRequestIDFrom is the caller's X-Request-ID, "" when it sent none
// (or one RequestID ignored).
func ClientRequestIDFrom(c *gin.Context) string { return c.GetString(clientRequestIDKey) }

// AccessLog writes one structured line per request.
func AccessLog() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		logger(c).Info("request",
			"method", c.Request.Method, "path", c.Request.URL.Path, "route", c.FullPath(),
			"status", c.Writer.Status(), "bytes", c.Writer.Size(),
			"duration_ms", float64(time.Since(start).Microseconds())/1000,
			"actor", Actor(c), "client_ip", c.ClientIP())
	}
}

// Recover turns a panic into a logged 500 problem; the server goes on.
func Recover() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				logger(c).Error("panic", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				if !c.Writer.Written() {
					WriteError(c, fmt.Errorf("panic: %v", r))
				}
				c.Abort()
			}
		}()
		c.Next()
	}
}

// CORS lets browsers on the given origins call the API; with none, no
// CORS headers are sent.
func CORS(origins []string) gin.HandlerFunc {
	if len(origins) == 0 {
		return func(c *gin.Context) { c.Next() }
	}
	cfg := cors.DefaultConfig()
	cfg.AllowOrigins = origins
	// Mcp-Protocol-Version and Mcp-Session-Id are the MCP face's (/mcp).
	cfg.AllowHeaders = []string{"Authorization", "Content-Type", "If-Match", "Idempotency-Key", "Prefer", "X-Request-ID", headerMinPosition,
		"Mcp-Protocol-Version", "Mcp-Session-Id"}
	cfg.ExposeHeaders = []string{"ETag", "Location", "X-Request-ID", headerClientRequestID, headerPosition, "Server-Timing", "Retry-After",
		"Idempotent-Replayed", "Preference-Applied", "X-Arq-Cache", "X-Arq-Session-Token", "Mcp-Session-Id"}
	cfg.AllowMethods = []string{"GET", "POST", "PATCH", "DELETE", "OPTIONS"}
	handle := cors.New(cfg)
	return func(c *gin.Context) {
		// cors answers an origin it does not allow with a bare 403; the
		// API answers it, as every error, with a problem.
		origin := c.GetHeader("Origin")
		host := c.Request.Host
		if origin != "" && origin != "http://"+host && origin != "https://"+host &&
			!slices.Contains(origins, origin) && !slices.Contains(origins, "*") {
			WriteError(c, errorf(ErrForbidden, "the origin %s is not allowed (ARQ_CORS_ORIGINS)", origin))
			return
		}
		handle(c)
	}
}

// StorableInput refuses, before any handler, a path or query text that
// Postgres cannot hold (not UTF-8, or with a NUL byte): a path id is 404,
// as no such resource can exist; a query parameter is 422, naming it.
// Asked for, Postgres would refuse the query with an error (a 500).
func StorableInput() gin.HandlerFunc {
	return func(c *gin.Context) {
		for _, p := range c.Params {
			if !readmodel.Storable(p.Value) {
				WriteError(c, errorf(domain.ErrNotFound, "no resource has the %s %q", p.Key, p.Value))
				return
			}
		}
		if c.Request.URL.RawQuery == "" {
			c.Next()
			return
		}
		v := &domain.ValidationError{}
		for name, values := range c.Request.URL.Query() {
			for _, x := range values {
				if !readmodel.Storable(x) || !readmodel.Storable(name) {
					v.Add(name, "must be UTF-8 text without the NUL character")
					break
				}
			}
		}
		if err := v.Err(); err != nil {
			WriteError(c, err)
			return
		}
		c.Next()
	}
}

// KnownQuery refuses, before any handler, a query parameter that the
// OpenAPI document does not list for the route: 422, naming each. A
// misspelt filter (tags= for tag=) would otherwise be ignored and answer
// as if none were given. Unrouted requests (404, 405) and the routes
// outside /v1 take any query.
func KnownQuery() gin.HandlerFunc {
	allowed := queryParameters()
	return func(c *gin.Context) {
		names, ok := allowed[c.Request.Method+" "+c.FullPath()]
		if !ok || c.Request.URL.RawQuery == "" {
			c.Next()
			return
		}
		// A part url.Query would drop (one holding ';', a bad escape) is
		// refused rather than ignored, as the handlers would ignore it.
		query, err := url.ParseQuery(c.Request.URL.RawQuery)
		if err != nil {
			WriteError(c, errorf(ErrBadRequest, "the query string is not one: %v", err))
			return
		}
		var unknown []string
		for name := range query {
			if !slices.Contains(names, name) {
				unknown = append(unknown, name)
			}
		}
		if len(unknown) > 0 {
			slices.Sort(unknown)
			v := &domain.ValidationError{}
			for _, name := range unknown {
				v.Add(name, "unknown query parameter")
			}
			WriteError(c, v)
			return
		}
		c.Next()
	}
}

// BodyLimit caps request bodies at n bytes; reading past it fails with
// ErrTooLarge (413) in BindJSON.
func BodyLimit(n int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > n {
			WriteError(c, errorf(ErrTooLarge, "the body is larger than %d bytes", n))
			return
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, n)
		c.Next()
	}
}

// Observe counts each answered request in m, by its route's template, with
// the status it was answered with and the time it took.
func Observe(m *metrics.Metrics) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		m.ObserveRequest(c.Request.Method, c.FullPath(), c.Writer.Status(), time.Since(start))
	}
}

// Timing reports the time the server spent as Server-Timing: app;dur=ms,
// set just before the answer's headers go out.
func Timing() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Writer = &timingWriter{ResponseWriter: c.Writer, start: start}
		c.Next()
	}
}

type timingWriter struct {
	gin.ResponseWriter
	start time.Time
	done  bool
}

// Unwrap lets http.ResponseController reach the connection (an event
// stream sets write deadlines through it).
func (w *timingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *timingWriter) stamp() {
	if !w.done {
		w.done = true
		ms := float64(time.Since(w.start).Microseconds()) / 1000
		w.Header().Set("Server-Timing", "app;dur="+strconv.FormatFloat(ms, 'f', 3, 64))
	}
}

func (w *timingWriter) WriteHeader(code int) { w.stamp(); w.ResponseWriter.WriteHeader(code) }
func (w *timingWriter) WriteHeaderNow()      { w.stamp(); w.ResponseWriter.WriteHeaderNow() }
func (w *timingWriter) Write(b []byte) (int, error) {
	w.stamp()
	return w.ResponseWriter.Write(b)
}
func (w *timingWriter) WriteString(s string) (int, error) {
	w.stamp()
	return w.ResponseWriter.WriteString(s)
}
