package commands_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// readSide are ARQ's packages that commands must not import: the read
// model, the API and the program reach commands through its ports
// (SummarySource, MissingEmbeddings, ...), never the other way, so the
// read side can change without the commands noticing.
var readSide = []string{
	"github.com/arq-memory/arq/projections",
	"github.com/arq-memory/arq/api",
	"github.com/arq-memory/arq/cache",
	"github.com/arq-memory/arq/cmd",
}

// TestCommandsImportNoReadSide fails when a file of commands imports the
// read model, the API or the program.
func TestCommandsImportNoReadSide(t *testing.T) {
	paths, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset, files := token.NewFileSet(), 0
	for _, path := range paths {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, path, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		files++
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range readSide {
				if p == bad || strings.HasPrefix(p, bad+"/") {
					t.Errorf("%s imports %s: commands reach the read side through ports only", path, p)
				}
			}
		}
	}
	if files == 0 {
		t.Fatal("found no commands source files to check")
	}
}
