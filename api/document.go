package api

// Document is the OpenAPI 3 document of the API as /openapi.json serves
// it. It is made from the handlers' types (openapi_schemas.go) and the
// operations table (openapi.go); the Go client (package client) is
// generated from it, and the tests check live answers against it.
func Document() ([]byte, error) { return openAPIDocument() }
