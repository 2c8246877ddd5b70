//go:build browser

// The browser tests drive Debian's chromium; they are built with the
// browser tag (go test -tags browser -run '^TestBrowser' ./e2e), which
// .ci/run always sets, so that the README's test command needs no
// browser on the machine.

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/arq-memory/arq/internal/testserver"
)

// The API reference at /docs renders in a real browser, Debian's chromium
// run headless, on a server with keys on (the page, its script and the
// document answer without one), under the page's Content-Security-Policy,
// and lists every operation of /openapi.json under its summary.
func TestBrowserDocsRenderEveryOperation(t *testing.T) {
	// A missing browser fails the test: a skip would pass a run that never
	// looked at the page.
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the /docs test needs Debian's chromium (apt-get install -y chromium; .ci/run installs it): %v", err)
	}
	s := testserver.Start(t, map[string]string{"ARQ_ADMIN_KEY": "docs-admin-key"})
	want := documentedOperations(t, s)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox, // the tests run as root, where chromium refuses its sandbox
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	// The first action starts the browser and binds its life to ctx, which
	// has no deadline; the page's actions below have one.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", browser, err)
	}

	problems := watchConsole(ctx)
	pageCtx, cancelPage := context.WithTimeout(ctx, 90*time.Second)
	defer cancelPage()
	if err := chromedp.Do(pageCtx, chromedp.Navigate(s.Base+"/docs")); err != nil {
		t.Fatalf("open /docs: %v", err)
	}
	// Redoc fetches the document, then renders every operation in one go,
	// or an error in place of the reference.
	raw, err := chromedp.Run(pageCtx, chromedp.Poll[json.RawMessage](renderedOperationsJS, chromedp.WithPollingTimeout(80*time.Second)))
	if err != nil {
		t.Fatalf("/docs did not render its operations: %v; the browser's console: %v", err, problems())
	}
	var page struct {
		Error      string              `json:"error"`
		Operations []renderedOperation `json:"operations"`
	}
	if err := json.Unmarshal(raw, &page); err != nil {
		t.Fatalf("decode the rendered operations: %v", err)
	}
	if page.Error != "" {
		t.Fatalf("Redoc rendered an error: %s; the browser's console: %v", page.Error, problems())
	}

	if len(page.Operations) != len(want) {
		t.Errorf("/docs lists %d operations, the document has %d", len(page.Operations), len(want))
	}
	for _, op := range want {
		i := slices.IndexFunc(page.Operations, func(r renderedOperation) bool {
			return strings.HasSuffix(r.ID, "/operation/"+op.id)
		})
		if i < 0 {
			t.Errorf("/docs does not list %s %s (%s)", op.method, op.path, op.id)
			continue
		}
		got := page.Operations[i]
		if got.Title != op.summary {
			t.Errorf("/docs titles %s %s %q, the document %q", op.method, op.path, got.Title, op.summary)
		}
		if !strings.Contains(got.Text, op.path) {
			t.Errorf("/docs does not show the path of %s %s", op.method, op.path)
		}
	}
	if p := problems(); len(p) > 0 {
		t.Errorf("the browser's console reported errors on /docs (a Content-Security-Policy violation is one):\n%s", strings.Join(p, "\n"))
	}
}

// renderedOperationsJS is truthy once Redoc has rendered: every operation
// section with its id, its heading (the summary) and its text, or the
// error Redoc shows instead.
const renderedOperationsJS = `(() => {
	const failed = [...document.querySelectorAll('h1')].find(h => h.textContent.includes('Something went wrong'));
	if (failed) return {error: failed.parentElement.textContent, operations: []};
	const sections = [...document.querySelectorAll('[data-section-id*="/operation/"]')];
	if (sections.length === 0) return null;
	return {error: '', operations: sections.map(s => ({
		id: s.getAttribute('data-section-id'),
		title: (s.querySelector('h2') || {textContent: ''}).textContent.trim(),
		text: s.textContent,
	}))};
})()`

// renderedOperation is one operation as Redoc rendered it: its section's
// id (which ends in the operationId), heading and text.
type renderedOperation struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Text  string `json:"text"`
}

// documentedOperation is one operation of the served document.
type documentedOperation struct{ method, path, id, summary string }

// documentedOperations reads every operation of GET /openapi.json.
func documentedOperations(t *testing.T, s *testserver.Server) []documentedOperation {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Summary     string `json:"summary"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(s.Must(200, s.Do("GET", "/openapi.json", nil)).Body, &doc); err != nil {
		t.Fatalf("decode /openapi.json: %v", err)
	}
	var ops []documentedOperation
	for path, item := range doc.Paths {
		for method, op := range item {
			if method == "parameters" {
				continue
			}
			ops = append(ops, documentedOperation{strings.ToUpper(method), path, op.OperationID, op.Summary})
		}
	}
	if len(ops) == 0 {
		t.Fatal("/openapi.json has no operations")
	}
	return ops
}

// watchConsole gathers, until ctx ends, the errors and uncaught
// exceptions the page reports in the browser's console; problems returns
// those so far.
func watchConsole(ctx context.Context) (problems func() []string) {
	var mu sync.Mutex
	var seen []string
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				seen = append(seen, fmt.Sprintf("%s %s (%s:%d)", m.Type, m.Text, m.URL, m.Line+1))
				mu.Unlock()
			}
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}
