// Command arq is ARQ's one binary: the HTTP server, the projection workers,
// and the operators' tools for the event log.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/alecthomas/kong"
	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"github.com/arq-memory/arq/app"
)

func main() {
	gin.SetMode(gin.ReleaseMode)
	redis.SetLogger(quietRedis{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is a mistake in the command line; it exits with status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// run executes one command line and returns the exit status: 0 when it
// succeeded or printed the help asked for, 2 for a mistake in the command
// line or a setting, 1 for any other failure. Errors are one line on
// stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr}
	kctx, helped, err := c.parse(args, getenv)
	if err == nil && !helped {
		kctx.BindTo(ctx, (*context.Context)(nil))
		err = kctx.Run(c)
	}
	switch {
	case err == nil:
		return 0
	case errors.As(err, new(usageError)), errors.As(err, new(*app.SettingError)):
		fmt.Fprintf(stderr, "arq: %v\n", app.SettingProblem(err))
		return 2
	default:
		fmt.Fprintf(stderr, "arq: %s\n", oneLine(err.Error()))
		return 1
	}
}

// oneLine joins the lines of an error (a driver's may hold several) so
// that it prints as one.
func oneLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "; ")
}

// exitRequest is how kong's help, which would end the process, ends only
// the parse.
type exitRequest int

// parse reads the command line into c.cfg and the command to run; helped
// tells that it printed help instead.
func (c *cli) parse(args []string, getenv func(string) string) (kctx *kong.Context, helped bool, err error) {
	switch {
	case len(args) == 0:
		return nil, false, usagef("no command given; 'arq --help' lists them")
	case args[0] == "help": // arq help [COMMAND...]
		args = append(append([]string{}, args[1:]...), "--help")
	}
	var line commandLine
	k, err := kong.New(&line, grammarOptions(getenv, c.stdout, c.stderr)...)
	if err != nil {
		return nil, false, fmt.Errorf("command line grammar: %w", err)
	}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(exitRequest); !ok {
				panic(r)
			}
			kctx, helped, err = nil, true, nil
		}
	}()
	kctx, err = k.Parse(args)
	if err != nil {
		return nil, false, mistake(err)
	}
	c.cfg = line.Settings
	if err := c.cfg.Validate(); err != nil {
		return nil, false, err
	}
	return kctx, false, nil
}

// cli carries one command line's configuration and output streams.
type cli struct {
	cfg    app.Config
	stdout io.Writer
	stderr io.Writer
}

// open opens the database and the parts of the app a command needs.
func (c *cli) open(ctx context.Context, parts app.Part) (*app.App, error) {
	return c.openWith(ctx, app.Options{Parts: parts})
}

// openWith opens the app as opt says.
func (c *cli) openWith(ctx context.Context, opt app.Options) (*app.App, error) {
	return app.Open(ctx, c.cfg, c.cfg.Logger(c.stderr), opt)
}

// openLog opens the log for a command that reads all of it as stored (no
// data keys), with how many events it holds, for the command's progress.
func (c *cli) openLog(ctx context.Context) (*app.App, int64, error) {
	a, err := c.openWith(ctx, app.Options{WithoutKeys: true})
	if err != nil {
		return nil, 0, err
	}
	total, err := a.Store().Count(ctx)
	if err != nil {
		a.Close()
		return nil, 0, err
	}
	return a, total, nil
}
