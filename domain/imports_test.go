package domain_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// forbidden are the imports that would tie the domain to a technology or to
// an adapter of ARQ's own.
var forbidden = []string{
	"database/sql",
	"net/http",
	"github.com/jackc/",
	"github.com/ThreeDotsLabs/",
	"github.com/gin-gonic/",
	"github.com/redis/",
	"github.com/arq-memory/arq/eventstore",
	"github.com/arq-memory/arq/projections",
	"github.com/arq-memory/arq/api",
	"github.com/arq-memory/arq/cmd",
	"github.com/arq-memory/arq/migrations",
}

// TestDomainImportsNoAdapter fails when a file of the domain imports
// Postgres, HTTP, Redis, Watermill or one of ARQ's adapters.
func TestDomainImportsNoAdapter(t *testing.T) {
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, src, parser.ImportsOnly)
		if err != nil {
			return err
		}
		files++
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbidden {
				if strings.HasPrefix(p, bad) {
					t.Errorf("%s imports %s: the domain must not depend on adapters or technologies", path, p)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatal("found no domain source files to check")
	}
}
