package api

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// docsFiles are the API reference's page and the Redoc bundle it loads,
// vendored from npm by scripts/docs/vendor, so /docs works offline.
//
//go:embed docs/index.html docs/vendor/redoc.standalone.js
var docsFiles embed.FS

// docsPolicy is the Content-Security-Policy of /docs and its bundle:
// scripts from this server only and no inline script, the document
// fetched from here alone, nothing framed or posted. Redoc needs two
// exceptions, which the browser test shows: inline styles (its
// styled-components writes <style> elements, and the bundle offers no way
// to give them a nonce) and a worker made from a blob (its search).
const docsPolicy = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; connect-src 'self'; worker-src blob:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// docsRoutes serves GET /docs, the API reference rendered from
// /openapi.json, and the one script it loads. Both are public, as the
// document is (see publicPaths).
func docsRoutes(r gin.IRoutes) {
	r.GET("/docs", embedded("docs/index.html", "text/html; charset=utf-8"))
	r.GET("/docs/redoc.standalone.js", embedded("docs/vendor/redoc.standalone.js", "text/javascript; charset=utf-8"))
}

// embedded serves one file of docsFiles with an ETag of its content, so a
// browser revalidates it (the bundle is 1 MB) instead of fetching it again.
func embedded(name, contentType string) gin.HandlerFunc {
	body, err := docsFiles.ReadFile(name)
	if err != nil {
		panic("api: " + name + " is not embedded: " + err.Error()) // a build without the file is broken
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("Content-Type", contentType)
		h.Set("Content-Security-Policy", docsPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", etag)
		http.ServeContent(c.Writer, c.Request, "", time.Time{}, bytes.NewReader(body))
	}
}
