package main

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/arq-memory/arq/app"
)

// runWith runs one command line with env as its whole environment.
func runWith(env map[string]string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, func(k string) string { return env[k] }, &out, &errb)
	return code, out.String(), errb.String()
}

// The help names every command with its arguments, and leaves the
// settings to each command's help.
func TestHelpListsEveryCommand(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, out, errOut := runWith(nil, args...)
		if code != 0 || errOut != "" {
			t.Fatalf("arq %s: exit %d, stderr %q", args[0], code, errOut)
		}
		for _, want := range []string{
			"serve [flags]", "migrate [flags]", "project [flags]",
			"projections status [flags]", "projections rebuild <NAME> [flags]", "projections verify <NAME> [flags]",
			"events [flags]", "history <STREAM> [flags]", "audit user <ID> [flags]", "replay <STREAM> [flags]",
			"export [flags]", "import <FILE> [flags]", "verify [flags]", "embeddings backfill [flags]", "version [flags]", "openapi [flags]",
			"erase user <ID> [flags]", "erase message <ID> [flags]", "erase memory <ID> [flags]", "keys new", "keys rotate [flags]",
			"memories extract [flags]",
			"Every setting is an ARQ_* environment variable and a flag",
		} {
			if !strings.Contains(out, "\n  "+want) && !strings.Contains(out, want) {
				t.Errorf("arq %s does not list %q:\n%s", args[0], want, out)
			}
		}
		if strings.Contains(out, "--database-url") {
			t.Errorf("arq %s lists the settings, which each command's help lists:\n%s", args[0], out)
		}
	}
}

func TestHelpOfProjections(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"projections", "--help"}, {"help", "projections"}} {
		code, out, errOut := runWith(nil, args...)
		if code != 0 || errOut != "" {
			t.Fatalf("arq %s: exit %d, stderr %q", strings.Join(args, " "), code, errOut)
		}
		for _, want := range []string{"Usage: arq projections <command>", "projections status [flags]", "projections rebuild <NAME> [flags]", "projections verify <NAME> [flags]"} {
			if !strings.Contains(out, want) {
				t.Errorf("arq %s does not say %q:\n%s", strings.Join(args, " "), want, out)
			}
		}
	}
}

// A command's help names its arguments, its own flags and the settings,
// each with its variable.
func TestHelpOfACommandNamesItsArgumentsAndFlags(t *testing.T) {
	t.Parallel()
	for args, wants := range map[string][]string{
		"projections verify --help": {"<NAME>", "one of streams, users", "--limit=20", "--json", "--quiet", "--database-url=", "($ARQ_DATABASE_URL)"},
		"serve --help":              {"--http-addr=\":8080\"", "($ARQ_HTTP_ADDR)", "--[no-]projections", "($ARQ_PROJECTIONS)", "--embeddings-url", "($ARQ_EMBEDDING_DIM)"},
		"replay --help":             {"<STREAM>", "--version=N", "--as-of=TIME"},
		"audit user --help":         {"<ID>", "--type=STRING", "--json"},
	} {
		code, out, errOut := runWith(nil, strings.Fields(args)...)
		if code != 0 || errOut != "" {
			t.Fatalf("arq %s: exit %d, stderr %q", args, code, errOut)
		}
		for _, want := range wants {
			if !strings.Contains(out, want) {
				t.Errorf("arq %s does not say %q:\n%s", args, want, out)
			}
		}
	}
}

func TestVersionCommand(t *testing.T) {
	t.Parallel()
	code, out, errOut := runWith(nil, "version")
	if code != 0 || out != app.Version()+"\n" || errOut != "" {
		t.Fatalf("arq version: exit %d, stdout %q, stderr %q; want %q", code, out, errOut, app.Version())
	}
}

// A mistake in the command line or a setting exits 2 with one line that
// names the fix; no database is needed to tell.
func TestCLIMistakesExit2WithOneLine(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env  map[string]string
		args string
		want string
	}{
		{nil, "", "arq: no command given; 'arq --help' lists them\n"},
		{nil, "serve-api", "arq: unknown command serve-api; 'arq --help' lists the commands\n"},
		{nil, "serve --foo", "arq: unknown flag --foo; 'arq serve --help' lists the flags\n"},
		{nil, "projections", "arq: projections needs a command: status, rebuild or verify; 'arq projections --help' lists them\n"},
		{nil, "projections rebuild", "arq: projections rebuild: expected NAME (one of " + strings.Join(app.ProjectionNames(), ", ") + ")\n"},
		{nil, "projections rebuild users sessions", "arq: projections rebuild: unexpected argument sessions; 'arq projections rebuild --help' lists its arguments\n"},
		{nil, "history", "arq: history: expected STREAM (a stream id: user-, session-, message- or memory-<id>)\n"},
		{nil, "audit group 1", "arq: unknown command audit group; 'arq audit --help' lists the commands\n"},
		{nil, "events --limit many", "arq: events: --limit: expected a valid 64 bit int but got \"many\"; 'arq events --help' lists its arguments and flags\n"},
		{nil, "serve --db-max-conns 1", "arq: --db-max-conns=\"1\": want a whole number of at least 2\n"},
		{nil, "migrate --log-format=xml", "arq: --log-format=\"xml\": want json or text\n"},
		{map[string]string{"ARQ_DB_MAX_CONNS": "1"}, "migrate", "arq: ARQ_DB_MAX_CONNS=\"1\": want a whole number of at least 2\n"},
		{map[string]string{"ARQ_EXPIRY_INTERVAL": "0s"}, "serve", "arq: ARQ_EXPIRY_INTERVAL=\"0s\": want a positive duration such as 2s\n"},
		{map[string]string{"ARQ_SUMMARIZER": "chat"}, "serve", "arq: ARQ_SUMMARIZER=chat needs ARQ_SUMMARIZER_URL (--summarizer-url), an OpenAI-compatible base URL\n"},
		{nil, "embeddings backfill", "arq: embeddings backfill needs a provider: set ARQ_EMBEDDINGS_URL (and ARQ_EMBEDDING_DIM)\n"},
		{map[string]string{"ARQ_EXTRACTOR": "chat"}, "serve", "arq: ARQ_EXTRACTOR=chat needs ARQ_EXTRACTOR_URL (--extractor-url), an OpenAI-compatible base URL\n"},
		{nil, "memories extract", "arq: memories extract needs --session ID or --user ID (one of them)\n"},
		{nil, "memories extract --session 01J00000000000000000000000 --since yesterday", "arq: --since must be an RFC 3339 time or a positive duration such as 24h, not \"yesterday\"\n"},
		{nil, "memories extract --session 01J00000000000000000000000", "arq: extraction is off: set ARQ_EXTRACTOR=chat and ARQ_EXTRACTOR_URL (an OpenAI-compatible endpoint)\n"},
	} {
		code, out, errOut := runWith(c.env, strings.Fields(c.args)...)
		if code != 2 || out != "" || errOut != c.want {
			t.Errorf("arq %s: exit %d, stdout %q, stderr %q; want exit 2 and %q", c.args, code, out, errOut, c.want)
		}
	}
}

// A flag overrides its variable, which is not even read then.
func TestFlagOverridesItsVariable(t *testing.T) {
	t.Parallel()
	env := map[string]string{"ARQ_DB_MAX_CONNS": "3", "ARQ_HTTP_ADDR": "127.0.0.1:1", "ARQ_LOG_LEVEL": "nonsense", "ARQ_PROJECTIONS": "true"}
	c := &cli{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	if _, _, err := c.parse([]string{"serve", "--db-max-conns", "7", "--log-level=debug", "--no-projections"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.cfg.DBMaxConns != 7 || c.cfg.HTTPAddr != "127.0.0.1:1" || c.cfg.LogLevel.String() != "DEBUG" || c.cfg.Projections {
		t.Fatalf("flags over variables: %+v", c.cfg)
	}
	// Where the flag is not given, the variable is read, and refused.
	if _, _, err := c.parse([]string{"migrate"}, func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "ARQ_LOG_LEVEL") {
		t.Fatalf("ARQ_LOG_LEVEL=nonsense without --log-level: %v", err)
	}
	// Settings may come before the command too.
	if _, _, err := c.parse([]string{"--db-max-conns=9", "migrate"}, func(string) string { return "" }); err != nil || c.cfg.DBMaxConns != 9 {
		t.Fatalf("a setting before the command: %v, %d", err, c.cfg.DBMaxConns)
	}
}

// app.FromEnv, which tests and other programs use, is the configuration
// the command line has with no flag.
func TestFromEnvEqualsTheCLIConfigWithoutFlags(t *testing.T) {
	t.Parallel()
	for _, env := range []map[string]string{
		nil,
		{"ARQ_DB_MAX_CONNS": "8", "ARQ_CORS_ORIGINS": "https://a.example, https://b.example", "ARQ_CACHE_ENTITIES": "false",
			"ARQ_READ_YOUR_WRITES_TIMEOUT": "20s", "ARQ_LOG_LEVEL": "warn", "ARQ_EMBEDDING_DIM": "3", "ARQ_EMBEDDINGS_URL": "http://127.0.0.1:9/v1"},
	} {
		getenv := func(k string) string { return env[k] }
		want, err := app.FromEnv(getenv)
		if err != nil {
			t.Fatal(err)
		}
		c := &cli{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
		if _, _, err := c.parse([]string{"serve"}, getenv); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c.cfg, want) {
			t.Errorf("env %v:\nCLI     %+v\nFromEnv %+v", env, c.cfg, want)
		}
		if env == nil && !reflect.DeepEqual(want, app.DefaultConfig()) {
			t.Errorf("FromEnv of nothing %+v, DefaultConfig %+v", want, app.DefaultConfig())
		}
	}
}
