package main

import (
	"bytes"
	"testing"

	"github.com/arq-memory/arq/api"
	"github.com/arq-memory/arq/version"
)

// arq version prints the build's version, as /healthz and the start line
// name it.
func TestVersionPrintsTheBuild(t *testing.T) {
	t.Parallel()
	code, out, errOut := runWith(nil, "version")
	if code != 0 || errOut != "" || out != version.Build()+"\n" {
		t.Fatalf("arq version: exit %d, stdout %q, stderr %q; want %q", code, out, errOut, version.Build()+"\n")
	}
}

// arq openapi prints the document the server serves, without a database.
func TestOpenAPIPrintsTheDocument(t *testing.T) {
	t.Parallel()
	code, out, errOut := runWith(nil, "openapi")
	doc, err := api.Document()
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || errOut != "" || !bytes.Equal([]byte(out), append(doc, '\n')) {
		t.Fatalf("arq openapi: exit %d, %d bytes, stderr %q; want the %d bytes of api.Document", code, len(out), errOut, len(doc))
	}
}
