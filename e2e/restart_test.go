package e2e

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
)

// pgCluster is a PostgreSQL server of the test's own, in a temporary
// directory: the test may stop and start it, which it may not do to the
// shared server the other tests run on at the same time.
type pgCluster struct {
	t    *testing.T
	bin  string // the directory of initdb, pg_ctl and postgres
	dir  string // the data directory, the socket and the log are in it
	port int
	// as is the OS user postgres, which runs the programs when the test
	// runs as root (initdb and postgres refuse root); nil otherwise.
	as *syscall.Credential
}

// newPGCluster makes a cluster with small settings, listening on
// 127.0.0.1 only; it is not started. It is stopped, if it runs, and
// removed when t ends. Missing programs fail the test: it is never
// skipped.
func newPGCluster(t *testing.T) *pgCluster {
	t.Helper()
	bin, err := pgBinDir()
	if err != nil {
		t.Fatalf("a test of a real PostgreSQL restart needs its server programs: %v", err)
	}
	port := privatePort(t)
	dir, err := os.MkdirTemp("", "arq-pg-")
	if err != nil {
		t.Fatal(err)
	}
	c := &pgCluster{t: t, bin: bin, dir: dir, port: port}
	t.Cleanup(func() {
		_ = c.pgCtl("stop", "-m", "immediate") // fails when it is not running
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove the test's cluster: %v", err)
		}
	})
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("the test runs as root, which initdb and postgres refuse, and there is no OS user postgres to run them: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.as = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatalf("give the cluster's directory to postgres: %v", err)
		}
	}
	if err := c.run("initdb", "-D", c.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		t.Fatal(err)
	}
	// fsync=off loses nothing when the server stops, however abruptly:
	// only a crash of the machine would.
	conf := fmt.Sprintf("listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n"+
		"shared_buffers = 16MB\nmax_connections = 50\nfsync = off\n", c.port, dir)
	f, err := os.OpenFile(filepath.Join(c.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(conf)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Fatalf("configure the test's cluster: %v", err)
	}
	return c
}

// URL is the URL of database name on the cluster.
func (c *pgCluster) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, name)
}

// Start starts the server and waits until it accepts connections.
func (c *pgCluster) Start() {
	c.t.Helper()
	if err := c.pgCtl("start", "-l", c.logFile()); err != nil {
		c.t.Fatalf("%v\n%s", err, c.Log())
	}
}

// Stop stops the server, in pg_ctl's mode (fast, immediate), and waits
// until it has.
func (c *pgCluster) Stop(mode string) {
	c.t.Helper()
	if err := c.pgCtl("stop", "-m", mode); err != nil {
		c.t.Fatalf("%v\n%s", err, c.Log())
	}
}

// Log is what the server logged.
func (c *pgCluster) Log() string {
	b, err := os.ReadFile(c.logFile())
	if err != nil {
		return fmt.Sprintf("(no server log: %v)", err)
	}
	return string(b)
}

func (c *pgCluster) data() string    { return filepath.Join(c.dir, "data") }
func (c *pgCluster) logFile() string { return filepath.Join(c.dir, "postgres.log") }

// pgCtl runs pg_ctl's action on the cluster, waiting up to a minute.
func (c *pgCluster) pgCtl(action string, args ...string) error {
	return c.run("pg_ctl", append([]string{action, "-D", c.data(), "-w", "-t", "60"}, args...)...)
}

// run runs one of the server's programs as the cluster's owner.
func (c *pgCluster) run(name string, args ...string) error {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	if c.as != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.as}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// pgBinDir finds the directory of PostgreSQL's server programs (initdb,
// pg_ctl, postgres): pg_ctl's on PATH, else pg_config --bindir, else the
// newest /usr/lib/postgresql/*/bin (Debian's, off PATH).
func pgBinDir() (string, error) {
	var dirs []string
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if p, err = filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(p))
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	debian, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(d string) int { v, _ := strconv.Atoi(filepath.Base(filepath.Dir(d))); return v }
	slices.SortFunc(debian, func(a, b string) int { return version(b) - version(a) })
	dirs = append(dirs, debian...)
	for _, d := range dirs {
		all := true
		for _, p := range []string{"initdb", "pg_ctl", "postgres"} {
			if _, err := os.Stat(filepath.Join(d, p)); err != nil {
				all = false
			}
		}
		if all {
			return d, nil
		}
	}
	return "", fmt.Errorf("no directory holds initdb, pg_ctl and postgres (looked at pg_ctl on PATH, pg_config --bindir and /usr/lib/postgresql/*/bin: %q)", dirs)
}

// privatePort is a port free on 127.0.0.1, below the kernel's range of
// ephemeral ports: the cluster must find it free again when it starts
// again, and the sockets other tests open meanwhile (listeners on port 0,
// each connection's own end) take their ports from that range.
func privatePort(t *testing.T) int {
	t.Helper()
	lo := 32768 // Linux's default
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n >= 4096 {
				lo = n
			}
		}
	}
	for range 100 {
		p := lo/2 + rand.IntN(lo/2)
		if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			ln.Close()
			return p
		}
	}
	t.Fatalf("no free port on 127.0.0.1 from %d to %d", lo/2, lo-1)
	return 0
}

// request is a request the test sends, and the answer it got.
type request struct {
	method, path string
	key          string         // the Idempotency-Key, if any
	body         map[string]any // nil for none
	r            testserver.Response
}

// send sends q and keeps its answer.
func (q *request) send(s *testserver.Server) {
	var body any
	if q.body != nil {
		body = q.body
	}
	var headers []string
	if q.key != "" {
		headers = []string{"Idempotency-Key", q.key}
	}
	q.r = s.Do(q.method, q.path, body, headers...)
}

// repeat sends next(0), next(1)... to s, one every 20 ms (or when the
// one before has answered, if later), until stop is closed, counting the
// answers in answered; the requests come on the channel then, with their
// answers.
func repeat(s *testserver.Server, stop <-chan struct{}, answered *atomic.Int32, next func(i int) *request) <-chan []*request {
	out := make(chan []*request, 1)
	go func() {
		var sent []*request
		defer func() { out <- sent }() // even when s.Do ends the goroutine
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			q := next(i)
			q.send(s)
			sent = append(sent, q)
			answered.Add(1)
		}
	}()
	return out
}

// unavailable tells whether r is a 503 problem with Retry-After of one of
// the kinds (database-unavailable, outcome-unknown...).
func unavailable(r testserver.Response, kinds ...string) bool {
	return r.Status == http.StatusServiceUnavailable && r.Header.Get("Retry-After") != "" &&
		r.Header.Get("Content-Type") == "application/problem+json" &&
		slices.Contains(kinds, strings.TrimPrefix(r.Str("type"), "https://arq.dev/problems/"))
}

// A real restart of PostgreSQL, stopped at once (as by a crash) while
// requests run, and started again: every request answers, 503
// database-unavailable with Retry-After while Postgres is away (or, for
// an append cut short, outcome-unknown), never 500; /readyz says 503, then
// 200. Once Postgres is back, a retry of an append refused for the outage,
// with its Idempotency-Key, runs at once (201, not 409), and the messages
// are all there: every one acknowledged before, during and after the
// restart, none twice.
func TestPostgresRestartAnswers503AndLosesNothing(t *testing.T) {
	t.Parallel()
	pg := newPGCluster(t)
	pg.Start()
	s := testserver.StartOn(t, pg.URL("arq"), nil)

	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "restart", "name": "Ada"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{"title": "chat"})).Str("id")
	path := "/v1/sessions/" + sid + "/messages"
	appendOf := func(name string) *request {
		return &request{method: "POST", path: path, key: "restart-" + name,
			body: map[string]any{"role": "user", "content": "message " + name}}
	}
	reads := []string{"/v1/sessions/" + sid, "/v1/sessions/" + sid + "/context", path}

	var acked []*request // appends answered 201 or 202
	for i := range 5 {
		q := appendOf(fmt.Sprintf("before-%d", i))
		q.send(s)
		s.Must(201, q.r)
		acked = append(acked, q)
	}

	// Appends and reads run on while Postgres stops, is away and starts.
	stop := make(chan struct{})
	var appends, gets atomic.Int32
	writing := repeat(s, stop, &appends, func(i int) *request { return appendOf(fmt.Sprintf("load-%d", i)) })
	reading := repeat(s, stop, &gets, func(i int) *request { return &request{method: "GET", path: reads[i%len(reads)]} })
	testwait.Eventually(t, 30*time.Second, "appends and reads running", func() (bool, error) {
		return appends.Load() >= 5 && gets.Load() >= 5, nil
	})
	pg.Stop("immediate")

	down := appendOf("down")
	down.send(s)
	want503(t, down.r)
	for _, p := range reads {
		want503(t, s.Do("GET", p, nil))
	}
	if r := s.Do("GET", "/readyz", nil); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while Postgres is stopped: %d %s, want 503", r.Status, r.Body)
	}

	pg.Start()
	if log := pg.Log(); !strings.Contains(log, "automatic recovery in progress") {
		t.Fatalf("Postgres started again without crash recovery, so it was not stopped abruptly:\n%s", log)
	}
	testwait.Eventually(t, 30*time.Second, "/readyz 200 once Postgres is back", func() (bool, error) {
		return s.Do("GET", "/readyz", nil).Status == http.StatusOK, nil
	})
	close(stop)
	written, read := <-writing, <-reading

	refused, outages, unknown := []*request{}, 0, 0
	for _, q := range read {
		switch {
		case q.r.Status == http.StatusOK:
		case unavailable(q.r, "database-unavailable"):
			outages++
		default:
			t.Errorf("GET %s during the restart: %d %v %s, want 200 or 503 database-unavailable", q.path, q.r.Status, q.r.Header, q.r.Body)
		}
	}
	for _, q := range written {
		switch {
		case q.r.Status == http.StatusCreated || q.r.Status == http.StatusAccepted:
			acked = append(acked, q)
		case unavailable(q.r, "database-unavailable", "outcome-unknown"):
			refused, outages = append(refused, q), outages+1
			if unavailable(q.r, "outcome-unknown") {
				unknown++
			}
		default:
			t.Errorf("append %s during the restart: %d %v %s, want 201, 202 or 503", q.key, q.r.Status, q.r.Header, q.r.Body)
		}
	}
	if outages == 0 {
		t.Fatalf("none of the %d requests sent during the restart met the outage", len(read)+len(written))
	}
	t.Logf("during the restart: %d appends (%d refused, %d of them of unknown outcome), %d reads; %d answers 503",
		len(written), len(refused), unknown, len(read), outages)

	// Each refused append again, with its key: one refused for the outage
	// runs at once. One cut short (outcome-unknown) may have been applied:
	// its key stays claimed (409) until a retry after a minute looks in
	// the log, so its message may or may not be there.
	maybe := map[string]bool{} // contents of appends that may or may not be there
	last := ""
	for _, q := range append(refused, down) {
		first := q.r
		q.send(s)
		switch {
		case unavailable(first, "database-unavailable") && q.r.Status == http.StatusCreated && q.r.Header.Get("Idempotent-Replayed") == "":
			acked, last = append(acked, q), q.r.Header.Get("X-Arq-Position")
		case unavailable(first, "outcome-unknown") && q.r.Status == http.StatusConflict:
			maybe[q.body["content"].(string)] = true
		default:
			t.Fatalf("retry of append %s, answered %d %s during the restart: %d %v %s, want 201 at once", q.key, first.Status, first.Body, q.r.Status, q.r.Header, q.r.Body)
		}
	}

	// Every message acknowledged is there once; no other message is
	// there, nor any twice.
	seen := map[string]int{}   // content → times
	ids := map[string]string{} // content → message id
	for cursor := ""; ; {
		p := s.Must(200, s.Do("GET", path+"?limit=100&cursor="+cursor, nil, "X-Arq-Min-Position", last))
		for _, m := range p.Items() {
			content, _ := m["content"].(string)
			seen[content]++
			ids[content], _ = m["id"].(string)
		}
		if cursor = p.Str("next_cursor"); cursor == "" {
			break
		}
	}
	for _, q := range acked {
		content := q.body["content"].(string)
		if seen[content] != 1 || ids[content] != q.r.Str("id") {
			t.Errorf("%q, acknowledged as %s, is there %d times (id %s)", content, q.r.Str("id"), seen[content], ids[content])
		}
		delete(seen, content)
	}
	for content, n := range seen {
		if !maybe[content] || n != 1 {
			t.Errorf("%q is there %d times, and was never acknowledged", content, n)
		}
	}
}
