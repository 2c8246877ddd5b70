package api

import (
	"slices"
	"sync"
)

// Document is the OpenAPI 3 document of the API as /openapi.json serves
// it. It is made from the handlers' types (openapi_schemas.go) and the
// operations table (openapi.go); the Go client (package client) is
// generated from it, and the tests check live answers against it.
func Document() ([]byte, error) {
	doc, err := document()
	return slices.Clone(doc), err
}

// document is made once per process: it depends on the types compiled
// in alone, and every API (a test binary starts many) serves the same.
// It holds nothing that changes.
var document = sync.OnceValues(openAPIDocument)
