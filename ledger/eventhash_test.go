package ledger_test

import (
	"context"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/ledger"
)

// The Go hash is the database's, byte for byte, over content that tests
// each rule of jsonb's text form: escapes, control characters, unicode,
// nested objects and arrays, numbers jsonb keeps as written or rewrites,
// times before 1970 and far ahead, and no predecessor.
func TestEventHashIsTheDatabases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Pool(t, testdb.New(t))
	prev := sha256.Sum256([]byte("prev"))
	ctl := func() string {
		var b strings.Builder
		for c := 1; c < 0x20; c++ {
			b.WriteByte(byte(c))
		}
		return b.String() + "\x7f"
	}()
	cases := []struct {
		name       string
		id, stream string
		data, md   string
		at         time.Time
		version    int32
		prev       []byte
	}{
		{name: "plain", id: "01J", stream: "memory-1", data: `{"content": "hello"}`, md: `{}`, at: time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC), version: 2, prev: prev[:]},
		{name: "first of a stream", id: "a", stream: "s", data: `{}`, md: `{"actor": "x"}`, at: time.Unix(1, 0), version: 1},
		{name: "escapes", id: `q"uo\te`, stream: "s\tt\nr\re\bam\f", data: `{"a\"b": "c\\d\/e", "tab": "\t", "nl": "x\ny"}`, md: `{"k": "\u001f\u0001"}`, at: time.Now(), version: 3, prev: prev[:]},
		{name: "control characters", id: ctl, stream: "c", data: `{"ctl": "\u0001x\u007f"}`, md: `{}`, at: time.Now(), version: 1},
		{name: "unicode", id: "évé-😀", stream: "память-流", data: `{"emoji": "😀", "escaped": "\u00e9\ud83d\ude00", "rtl": "שלום", "zwj": "a\u200db"}`, md: `{"ñ": "ü"}`, at: time.Now(), version: 7, prev: prev[:]},
		{name: "nested", id: "n", stream: "n", data: `{"z": [1, {"b": [true, false, null], "a": {}}, []], "a": {"y": {"x": [[]]}}, "": ""}`, md: `{"b": 1, "a": 2, "aa": 3}`, at: time.Now(), version: 1},
		{name: "numbers", id: "num", stream: "n", data: `[1e400, -0, 0.0, 1.50, 12345678901234567890123456789, 1E-7, -3.14159265358979323846264338327950288]`, md: `{"n": 1e3}`, at: time.Now(), version: 1},
		{name: "scalar data", id: "s", stream: "s", data: `"just a string"`, md: `null`, at: time.Now(), version: 1},
		{name: "long ago", id: "o", stream: "o", data: `{}`, md: `{}`, at: time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC), version: 1},
		{name: "year one", id: "y", stream: "y", data: `{}`, md: `{}`, at: time.Date(1, 1, 2, 3, 4, 5, 6000, time.UTC), version: 1},
		{name: "year 999", id: "y", stream: "y", data: `{}`, md: `{}`, at: time.Date(999, 5, 6, 7, 8, 9, 0, time.UTC), version: 1},
		{name: "far ahead", id: "f", stream: "f", data: `{}`, md: `{}`, at: time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), version: 2147483647},
		{name: "another zone", id: "z", stream: "z", data: `{}`, md: `{}`, at: time.Date(2026, 1, 1, 0, 30, 0, 0, time.FixedZone("x", 5*3600)), version: 1},
	}
	for _, c := range cases {
		var dbHash, data, md []byte
		var at time.Time
		// The content is read back as the verifier reads it: jsonb's
		// text form, and the time as stored (microseconds).
		err := pool.QueryRow(ctx, `SELECT arq_event_hash($1, $2, $3, 'type "t"', $4, 'ev\ent', 3, $5, $6::jsonb, $7::jsonb),
				$6::jsonb::text, $7::jsonb::text, $5::timestamptz`,
			c.prev, c.id, c.stream, c.version, c.at, c.data, c.md).Scan(&dbHash, &data, &md, &at)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got := ledger.EventHash(c.prev, ledger.EventContent{EventID: c.id, StreamID: c.stream, StreamType: `type "t"`,
			Version: c.version, EventType: `ev\ent`, SchemaVersion: 3, RecordedAt: at, Data: data, Metadata: md})
		if string(got[:]) != string(dbHash) {
			t.Errorf("%s: the Go hash differs from arq_event_hash's", c.name)
		}
	}
}
