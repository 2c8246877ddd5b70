package app

import (
	"go/build"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// layers ranks the module's packages: a package may import only packages
// of a lower rank. The domain and small helpers are at the bottom; the
// adapters (the log, projections, the read and write sides, caches, the
// HTTP API) above them; the process (app) and what drives it (the binary,
// the end-to-end tests) on top.
var layers = map[string]int{
	"domain": 0, "version": 0, "client": 0, "tokens": 0, "logproof": 0, "internal/batch": 0, "internal/openai": 0, "internal/pgcancel": 0, "internal/testwait": 0, "internal/redisclient": 0,
	"eventstore": 1, "embeddings": 1, "summarize": 1, "extract": 1, "migrations": 1, "ratelimit": 1, "ledger": 1,
	"projections": 2, "history": 2, "live": 2, "keys": 2, "owners": 2, "idempotency": 2, "internal/testdb": 2, "internal/fakellm": 2, "vault": 2,
	"projections/readmodel": 3, "commands": 3, "metrics": 3, "internal/logtamper": 3,
	"queries":   4,
	"cache":     5,
	"api":       6,
	"mcpserver": 7,
	"app":       8,
	"cmd/arq":   9, "e2e": 9, "internal/testserver": 9,
}

// The package graph runs one way: no package's code imports one of a
// higher (or its own) layer, so there is no cycle and no arrow back up. A new package
// must be given its layer here.
func TestPackagesImportOnlyLowerLayers(t *testing.T) {
	const module = "github.com/arq-memory/arq/"
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
			return filepath.SkipDir
		}
		pkg, err := build.ImportDir(path, build.ImportComment)
		if err != nil {
			return nil // no Go files here
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		rank, ok := layers[rel]
		if !ok {
			t.Errorf("package %s has no layer in layers", rel)
			return nil
		}
		seen++
		// Tests may import the test helpers of any layer; the graph is
		// the program's.
		for _, imp := range pkg.Imports {
			dep, ours := strings.CutPrefix(imp, module)
			if !ours || dep == rel {
				continue
			}
			if r, ok := layers[dep]; !ok || r >= rank {
				t.Errorf("%s (layer %d) imports %s (layer %d): only lower layers may be imported", rel, rank, dep, r)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < len(layers) {
		t.Errorf("found %d of the %d packages layers names", seen, len(layers))
	}
}
