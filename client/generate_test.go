package client

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/arq-memory/arq/api"
)

var update = flag.Bool("update", false, "rewrite openapi.json and client.gen.go")

// The client is generated from the document the server serves, and
// generating it again changes nothing: a change to the API that was not
// followed by `go generate ./client` fails here.
func TestClientIsGenerated(t *testing.T) {
	raw, err := api.Document()
	if err != nil {
		t.Fatal(err)
	}
	var doc bytes.Buffer
	if err := json.Indent(&doc, raw, "", "  "); err != nil {
		t.Fatal(err)
	}
	doc.WriteByte('\n')

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "openapi.json"), doc.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// The settings, with the output put in dir (oapi-codegen takes the
	// output from its settings over its -o flag).
	cfg, err := os.ReadFile("oapi-codegen.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte("output: client.gen.go"), []byte("output: "+filepath.Join(dir, "client.gen.go")), 1)
	if err := os.WriteFile(filepath.Join(dir, "oapi-codegen.yaml"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "tool", "oapi-codegen", "-config", filepath.Join(dir, "oapi-codegen.yaml"), filepath.Join(dir, "openapi.json"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oapi-codegen: %v\n%s", err, out)
	}
	if *update {
		for _, name := range []string{"openapi.json", "client.gen.go"} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(name, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	for _, name := range []string{"openapi.json", "client.gen.go"} {
		want, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not what the API generates: run go generate ./client", name)
		}
	}
}
