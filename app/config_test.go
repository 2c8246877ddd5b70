package app

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// Every setting has a variable and a flag of the same name, and the rows'
// checks and defaults parse.
func TestConfigRowsNameTheirVariableAndFlagAlike(t *testing.T) {
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, v := f.Tag.Get("name"), f.Tag.Get("var")
		if name == "" || v == "" || f.Tag.Get("help") == "" {
			t.Errorf("%s: want a name, a var and a help tag", f.Name)
			continue
		}
		if want := "ARQ_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")); v != want {
			t.Errorf("%s: variable %s for flag --%s, want %s", f.Name, v, name, want)
		}
		if _, err := ruleOf(f.Tag.Get("check"), settingVars()); err != nil {
			t.Errorf("%s: %v", f.Name, err)
		}
	}
	c := DefaultConfig()
	if c.DBMaxConns != 20 || c.LogFormat != "json" || !c.Projections || c.EmbeddingsTimeout != 5*time.Second || c.EmbeddingDim != 0 {
		t.Errorf("defaults: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
}

// A refused variable is named with its value and what it wants; the
// messages are those operators have seen all along.
func TestConfigFromEnvRefusals(t *testing.T) {
	for _, c := range []struct{ key, value, want string }{
		{"ARQ_DB_MAX_CONNS", "1", `ARQ_DB_MAX_CONNS="1": want a whole number of at least 2`},
		{"ARQ_DB_MAX_CONNS", "many", `ARQ_DB_MAX_CONNS="many": want a whole number of at least 2`},
		{"ARQ_EMBEDDING_DIM", "0", `ARQ_EMBEDDING_DIM="0": want a whole number from 1 to 4096`},
		{"ARQ_EMBEDDING_DIM", "4097", `ARQ_EMBEDDING_DIM="4097": want a whole number from 1 to 4096`},
		{"ARQ_EXPIRY_INTERVAL", "0s", `ARQ_EXPIRY_INTERVAL="0s": want a positive duration such as 2s`},
		{"ARQ_SHUTDOWN_TIMEOUT", "soon", `ARQ_SHUTDOWN_TIMEOUT="soon": want a positive duration such as 2s`},
		{"ARQ_LOG_LEVEL", "loud", `ARQ_LOG_LEVEL="loud": want debug, info, warn or error`},
		{"ARQ_CACHE_ENTITIES", "maybe", `ARQ_CACHE_ENTITIES="maybe": want true or false`},
		{"ARQ_SUMMARIZER", "chat", "ARQ_SUMMARIZER=chat needs ARQ_SUMMARIZER_URL"},
		{"ARQ_DATABASE_URL", "mysql://h/db", `ARQ_DATABASE_URL="mysql://h/db": want postgres://`},
		{"ARQ_DATABASE_URL", "postgres://h/", `ARQ_DATABASE_URL="postgres://h/": want postgres://`},
		{"ARQ_REDIS_URL", "http://h", `ARQ_REDIS_URL="http://h": want redis://`},
		{"ARQ_EMBEDDINGS_URL", "ftp://h", `ARQ_EMBEDDINGS_URL="ftp://h": want an OpenAI-compatible base URL`},
		{"ARQ_MAX_BODY_BYTES", "10", `ARQ_MAX_BODY_BYTES="10": want a whole number of at least 1024`},
		// The default budget (4096) must fit under the ceiling.
		{"ARQ_MAX_CONTEXT_TOKENS", "4095", `ARQ_MAX_CONTEXT_TOKENS="4095": want a whole number from 4096 to 1000000`},
		{"ARQ_MAX_CONTEXT_TOKENS", "1000001", `ARQ_MAX_CONTEXT_TOKENS="1000001": want a whole number from 4096 to 1000000`},
		{"ARQ_REQUEST_READ_TIMEOUT", "0s", `ARQ_REQUEST_READ_TIMEOUT="0s": want a positive duration such as 2s`},
	} {
		_, err := FromEnv(func(k string) string {
			if k == c.key {
				return c.value
			}
			return ""
		})
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s=%s: %v, want %q", c.key, c.value, err, c.want)
		}
	}
}

// A summarizer URL is checked only where it is read (chat), and a log
// level is any slog reads, as before the settings were rows.
func TestSettingsCheckedWhereTheyAreRead(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env  map[string]string
		want string // "" for no error
	}{
		{map[string]string{"ARQ_SUMMARIZER_URL": "localhost:8080/v1"}, ""},
		{map[string]string{"ARQ_SUMMARIZER": "chat", "ARQ_SUMMARIZER_URL": "localhost:8080/v1"}, `ARQ_SUMMARIZER=chat needs ARQ_SUMMARIZER_URL (--summarizer-url), an OpenAI-compatible base URL such as https://api.openai.com/v1, not "localhost:8080/v1"`},
		{map[string]string{"ARQ_LOG_LEVEL": "warn+1"}, ""},
		{map[string]string{"ARQ_LOG_LEVEL": "INFO-4"}, ""},
	} {
		_, err := FromEnv(func(k string) string { return c.env[k] })
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v: %v", c.env, err)
		case c.want != "" && (err == nil || err.Error() != c.want):
			t.Errorf("%v: %v, want %q", c.env, err, c.want)
		}
	}
}

func TestConfigFromEnvReadsEachKind(t *testing.T) {
	env := map[string]string{
		"ARQ_DB_MAX_CONNS": "5", "ARQ_LOG_LEVEL": "WARN", "ARQ_PROJECTIONS": "false", "ARQ_CORS_ORIGINS": " a, ,b",
		"ARQ_READ_YOUR_WRITES_TIMEOUT": "20s", "ARQ_CACHE_MEMORY_BYTES": "0", "ARQ_EMBEDDING_DIM": "3",
		"ARQ_SUMMARIZER": "chat", "ARQ_SUMMARIZER_URL": "http://127.0.0.1:9/v1",
	}
	c, err := FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.DBMaxConns != 5 || c.LogLevel.String() != "WARN" || c.Projections || !reflect.DeepEqual(c.CORSOrigins, []string{"a", "b"}) ||
		c.ReadYourWrites != 20*time.Second || c.CacheMemoryBytes != 0 || c.EmbeddingDim != 3 || c.Summarizer != "chat" {
		t.Errorf("%+v", c)
	}
}

// Validate checks a Config changed by hand by the same rows.
func TestConfigValidateChecksTheRows(t *testing.T) {
	c := DefaultConfig()
	c.DBMaxConns = 1
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "ARQ_DB_MAX_CONNS") {
		t.Errorf("DBMaxConns 1: %v", err)
	}
	c = DefaultConfig()
	c.LogFormat = "xml"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "want json or text") {
		t.Errorf("log format xml: %v", err)
	}
}
