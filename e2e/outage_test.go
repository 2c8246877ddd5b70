package e2e

import (
	"bytes"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
)

// pgProxy forwards TCP connections to the test Postgres, and can play an
// outage without touching the shared server: cut closes every connection
// and refuses new ones (each is closed as soon as it is accepted) until
// restore.
type pgProxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]bool
	// marker, when set, cuts the proxy once the server has answered the
	// client message that holds it (see cutAfter); armed is the
	// connection that sent it. With dropAnswer the answer is lost: the
	// client never receives it (see cutBeforeAnswer).
	marker     []byte
	armed      net.Conn
	dropAnswer bool
}

// newPGProxy listens on 127.0.0.1 and forwards to the test Postgres.
func newPGProxy(t *testing.T) *pgProxy {
	t.Helper()
	u, err := url.Parse(testdb.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{t: t, ln: ln, target: u.Host, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.closeAll() })
	go p.serve()
	return p
}

// URL is the URL of database url reached through the proxy.
func (p *pgProxy) URL(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		p.t.Fatal(err)
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

func (p *pgProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.mu.Unlock()
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			s.Close()
			continue
		}
		p.conns[c], p.conns[s] = true, true
		p.mu.Unlock()
		go p.pump(s, c, c)
		go p.pump(c, s, c)
	}
}

// pump copies from src to dst; client names the client's side of the
// pair, for the marker.
func (p *pgProxy) pump(dst, src, client net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			drop := dst == client && p.armed == client && p.dropAnswer
			p.mu.Unlock()
			if drop {
				p.mu.Lock()
				p.armed = nil
				p.mu.Unlock()
				p.Cut()
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			p.mu.Lock()
			switch {
			case src == client && p.marker != nil && bytes.Contains(buf[:n], p.marker):
				p.armed, p.marker = client, nil
			case dst == client && p.armed == client:
				// The server answered the marked message: the outage
				// begins now.
				p.armed = nil
				p.mu.Unlock()
				p.Cut()
				return
			}
			p.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// cutAfter cuts the proxy once the server has answered the first client
// message holding marker.
func (p *pgProxy) cutAfter(marker string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.marker = []byte(marker)
}

// cutBeforeAnswer cuts the proxy when the server answers the first client
// message holding marker, and the answer is lost: the statement ran, and
// its client cannot know it did.
func (p *pgProxy) cutBeforeAnswer(marker string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.marker, p.dropAnswer = []byte(marker), true
}

// Cut closes every connection and refuses new ones.
func (p *pgProxy) Cut() {
	p.mu.Lock()
	p.cut = true
	p.mu.Unlock()
	p.closeAll()
}

// Restore accepts connections again.
func (p *pgProxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

func (p *pgProxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// A database outage answers 503 problem+json with Retry-After, never 500,
// and /readyz says so. A request whose Idempotency-Key was claimed just
// before the outage, and which appended nothing, leaves no claim that
// holds its retry off: once Postgres is back, the retry with the same key
// runs at once (201, not 409), and its message is in the log once.
func TestDatabaseOutageAnswers503AndRetriesRunAtOnce(t *testing.T) {
	t.Parallel()
	proxy, s, path := sessionBehindProxy(t)
	key := "outage-" + ulid.Make().String()
	msg := map[string]any{"role": "user", "content": "said just as Postgres went away"}

	// The outage begins right after the key is claimed: the handler's
	// statements then find the database gone, before any append is sent.
	proxy.cutAfter(key)
	want503(t, s.Do("POST", path, msg, "Idempotency-Key", key))

	// While it lasts: another request (its claim fails) and readiness.
	want503(t, s.Do("POST", path, msg, "Idempotency-Key", key+"-other"))
	if r := s.Do("GET", "/readyz", nil); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("/readyz during the outage: %d %s, want 503", r.Status, r.Body)
	}
	if !strings.Contains(s.Logs.String(), "a retry releases it") {
		t.Fatalf("the claim of the failed request was released (or never taken), so this tested nothing of a claim left behind:\n%s", s.Logs)
	}

	restore(t, proxy, s)

	// The retry runs at once, and a second is its replay.
	first := s.Must(201, s.Do("POST", path, msg, "Idempotency-Key", key))
	if first.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("the retry was a replay: %v %s", first.Header, first.Body)
	}
	again := s.Must(201, s.Do("POST", path, msg, "Idempotency-Key", key))
	if again.Header.Get("Idempotent-Replayed") != "true" || again.Str("id") != first.Str("id") {
		t.Fatalf("second retry: %v %s, want the replay of %s", again.Header, again.Body, first.Body)
	}
	items := s.Must(200, s.Do("GET", path, nil, "X-Arq-Min-Position", first.Header.Get("X-Arq-Position"))).Items()
	if len(items) != 1 || items[0]["id"] != first.Str("id") {
		t.Fatalf("messages after the outage: %v, want the one message %s once", items, first.Str("id"))
	}
}

// sessionBehindProxy starts a server whose Postgres is reached through a
// proxy that can play an outage, and a session of a user on it; path is
// where the session's messages are appended.
func sessionBehindProxy(t *testing.T) (proxy *pgProxy, s *testserver.Server, path string) {
	t.Helper()
	proxy = newPGProxy(t)
	s = testserver.StartOn(t, proxy.URL(testdb.New(t)), nil)
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "outage", "name": "Ada"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"title": "chat"})).Str("id")
	return proxy, s, "/v1/sessions/" + sid + "/messages"
}

// restore ends the proxy's outage and waits until the server is ready
// again.
func restore(t *testing.T, proxy *pgProxy, s *testserver.Server) {
	t.Helper()
	proxy.Restore()
	testwait.Eventually(t, 30*time.Second, "/readyz 200 once Postgres is reachable again", func() (bool, error) {
		return s.Do("GET", "/readyz", nil).Status == http.StatusOK, nil
	})
}

// want503 fails the test unless r is a 503 problem of an unreachable
// database with Retry-After.
func want503(t *testing.T, r testserver.Response) {
	t.Helper()
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" ||
		r.Header.Get("Content-Type") != "application/problem+json" || r.Str("type") != "https://arq.dev/problems/database-unavailable" {
		t.Fatalf("during the outage: %d %v %s, want 503 database-unavailable with Retry-After", r.Status, r.Header, r.Body)
	}
}

// An append whose answer is lost with its connection may have committed:
// the client is told its outcome is unknown (503 outcome-unknown), never
// that the database was unavailable, and a retry with the same key is held
// off (409 with Retry-After) until the log can say, instead of appending
// the message a second time.
func TestAnAppendWhoseAnswerIsLostIsNeverAppendedTwice(t *testing.T) {
	t.Parallel()
	proxy, s, path := sessionBehindProxy(t)
	key := "lost-" + ulid.Make().String()
	msg := map[string]any{"role": "user", "content": "said as the answer was lost"}

	// The append's events carry the key in their metadata; the claim
	// sends the key alone.
	proxy.cutBeforeAnswer(`"idempotency_key":"` + key + `"`)
	r := s.Do("POST", path, msg, "Idempotency-Key", key)
	if r.Status != http.StatusServiceUnavailable || r.Str("type") != "https://arq.dev/problems/outcome-unknown" {
		t.Fatalf("an append whose answer was lost: %d %s, want 503 outcome-unknown", r.Status, r.Body)
	}
	restore(t, proxy, s)
	retry := s.Do("POST", path, msg, "Idempotency-Key", key)
	if retry.Status != http.StatusConflict || retry.Header.Get("Retry-After") == "" {
		t.Fatalf("the retry: %d %v %s, want 409 with Retry-After until the outcome is known", retry.Status, retry.Header, retry.Body)
	}
	testwait.Eventually(t, 30*time.Second, "the append that ran is read back", func() (bool, error) {
		return len(s.Must(200, s.Do("GET", path, nil)).Items()) == 1, nil
	})
}
