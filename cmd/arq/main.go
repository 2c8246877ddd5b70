// Command arq is ARQ's one binary: the HTTP server, the projection workers,
// and the operators' tools for the event log.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"github.com/arq-memory/arq/app"
)

const usage = `arq — memory and context store for AI assistants

Usage:
  arq serve                      create and migrate the database, serve the API and run projections
  arq migrate                    create and migrate the database, then exit
  arq project                    run the projections alone (no API)
  arq projections status         show each projection's position, lag, state and last error
  arq projections rebuild NAME   replay the whole log into a copy of a projection and switch it in;
                                 --online follows the live projection a server keeps current
  arq projections verify NAME    rebuild a projection into a scratch copy and report every row that differs
  arq events                     print the event log as NDJSON
  arq history STREAM             every event of an entity: when, who, which request, what changed (--json)
  arq audit user ID              every event of a user and of everything of theirs (--type, --json)
  arq replay STREAM              the entity as it was: --version N or --as-of TIME
  arq export > log.ndjson        write the log as NDJSON, in commit-safe order (--since TIME)
  arq import log.ndjson          read an exported log into an empty database and rebuild projections (--force)
  arq verify                     walk the log's hash chains and report every broken link (--stream S, --json)
  arq embeddings backfill        give live memories and messages without an embedding one from the provider

Run 'arq COMMAND -h' for a command's flags. Every flag has an ARQ_* environment variable.
`

// usageError is a mistake in the command line; it exits with status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

func main() {
	gin.SetMode(gin.ReleaseMode)
	redis.SetLogger(quietRedis{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit status. Errors are
// printed as one line on stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	err := dispatch(ctx, args, getenv, stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "arq: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "arq: %v\n", err)
		return 1
	}
}

func dispatch(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("no command given; 'arq help' lists them")
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	cfg, err := app.FromEnv(getenv)
	if err != nil {
		return usagef("%v", err)
	}
	c := &cli{cfg: cfg, stdout: stdout, stderr: stderr}
	switch args[0] {
	case "serve":
		return c.serve(ctx, args[1:])
	case "migrate":
		return c.migrate(ctx, args[1:])
	case "project":
		return c.project(ctx, args[1:])
	case "projections":
		if len(args) < 2 {
			return usagef("projections needs status, rebuild or verify")
		}
		switch args[1] {
		case "status":
			return c.projectionsStatus(ctx, args[2:])
		case "rebuild":
			return c.projectionsRebuild(ctx, args[2:])
		case "verify":
			return c.projectionsVerify(ctx, args[2:])
		}
		return usagef("unknown projections command %q (want status, rebuild or verify)", args[1])
	case "events":
		return c.events(ctx, args[1:])
	case "verify":
		return c.verify(ctx, args[1:])
	case "history":
		return c.history(ctx, args[1:])
	case "audit":
		return c.audit(ctx, args[1:])
	case "export":
		return c.export(ctx, args[1:])
	case "import":
		return c.importLog(ctx, args[1:])
	case "replay":
		return c.replay(ctx, args[1:])
	case "embeddings":
		if len(args) < 2 || args[1] != "backfill" {
			return usagef("embeddings needs backfill")
		}
		return c.embeddingsBackfill(ctx, args[2:])
	}
	return usagef("unknown command %q (run 'arq help')", args[0])
}

// cli carries one command line's configuration and output streams.
type cli struct {
	cfg    app.Config
	stdout io.Writer
	stderr io.Writer
	// ready, when set, learns the HTTP address once `serve` listens.
	ready func(addr string)
}

// parse parses a command's flags; positional names the positional
// arguments it takes.
func (c *cli) parse(name string, args []string, bind func(*flag.FlagSet), positional int) ([]string, error) {
	fs := flag.NewFlagSet("arq "+name, flag.ContinueOnError)
	// The flag package prints a mistake and the usage; a mistake is to be
	// one line (returned), the usage only when asked for (-h).
	fs.SetOutput(io.Discard)
	bindCommon(&c.cfg, fs)
	if bind != nil {
		bind(fs)
	}
	// Flags may follow positional arguments: arq projections rebuild NAME --json.
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(c.stderr)
				fs.Usage()
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(rest) != positional {
		return nil, usagef("arq %s takes %d argument(s), got %d", name, positional, len(rest))
	}
	if err := c.cfg.Validate(); err != nil {
		return nil, usagef("%v", err)
	}
	return rest, nil
}

// open opens the database and the parts of the app a command needs.
func (c *cli) open(ctx context.Context, parts app.Part) (*app.App, error) {
	return app.Open(ctx, c.cfg, c.cfg.Logger(c.stderr), app.Options{Parts: parts})
}
