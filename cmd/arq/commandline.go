package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/arq-memory/arq/api"
	"github.com/arq-memory/arq/app"
)

// commandLine is arq's grammar: the settings (app.Config, each with its
// ARQ_* variable), which every command takes, and one struct a command
// with that command's arguments and flags.
type commandLine struct {
	Settings app.Config `embed:""`

	Serve       serveCmd       `cmd:"" help:"Create and migrate the database, serve the API and run the projections (--no-projections: the API only)."`
	Migrate     migrateCmd     `cmd:"" help:"Create and migrate the database, then exit."`
	Project     projectCmd     `cmd:"" help:"Run the projections alone (no API), so API servers and projection workers scale apart."`
	MCP         mcpCmd         `cmd:"" name:"mcp" help:"Serve the API's MCP tools over stdin and stdout, for a desktop assistant: the projections and workers run as with serve (or --url: a remote server answers), no port is opened, logs go to stderr."`
	Projections projectionsCmd `cmd:"" help:"Show, rebuild or verify the projections."`
	Events      eventsCmd      `cmd:"" help:"Print the event log as NDJSON."`
	History     historyCmd     `cmd:"" help:"Print every event of an entity: when, who, which request, what changed."`
	Audit       auditCmd       `cmd:"" help:"Print every event of a user and of everything of theirs."`
	Replay      replayCmd      `cmd:"" help:"Print an entity as it was at a version or a time, folded from the log (JSON)."`
	Export      exportCmd      `cmd:"" help:"Write the log to stdout as NDJSON, in commit-safe order, with hashes."`
	Import      importCmd      `cmd:"" help:"Read an exported log into an empty database, if every hash, chain and carried checkpoint verifies, then rebuild every projection."`
	Verify      verifyCmd      `cmd:"" help:"Walk the log's hash chains and report every broken link; exit 1 when the log is not intact."`
	Embeddings  embeddingsCmd  `cmd:"" help:"Fill in embeddings from the configured provider."`
	Erase       eraseCmd       `cmd:"" help:"Erase a user, a message or a memory for good: its data keys, kept answers and cached copies go, and the log records the erasure."`
	Memories    memoriesCmd    `cmd:"" help:"Extract memories from conversations by hand, with the configured extractor."`
	Keys        keysCmd        `cmd:"" help:"Make a master key, or rewrap the data keys with the current one."`
	Log         logCmd         `cmd:"" help:"The log's signing key, signed checkpoints and proofs (its Merkle tree)."`
	Version     versionCmd     `cmd:"" help:"Print arq's version."`
	OpenAPI     openapiCmd     `cmd:"" name:"openapi" help:"Print the OpenAPI document the server serves at /openapi.json (JSON)."`
}

type (
	serveCmd   struct{}
	migrateCmd struct{}
	projectCmd struct{}
	versionCmd struct{}
	openapiCmd struct{}
	mcpCmd     struct {
		Key string `name:"key" env:"ARQ_MCP_KEY" placeholder:"KEY" help:"The API key (or a session's token) every tool call is made with, when the API has keys (ARQ_ADMIN_KEY set)."`
		URL string `name:"url" placeholder:"URL" help:"Serve the tools of the ARQ server at this base URL (e.g. https://arq.example.com), each call a request to it, instead of opening the database here."`
	}

	projectionsCmd struct {
		Status  projectionsStatusCmd  `cmd:"" help:"Show each projection's state, position, events behind and last error, and any copy of one."`
		Rebuild projectionsRebuildCmd `cmd:"" help:"Replay the whole log into a new copy of a projection and switch it in."`
		Verify  projectionsVerifyCmd  `cmd:"" help:"Rebuild a projection into a scratch copy and report every row that differs from the live tables; exit 1 when any does."`
	}
	projectionsStatusCmd struct {
		JSON bool `name:"json" help:"Print JSON instead of a table."`
	}
	projectionsRebuildCmd struct {
		Name   string `arg:"" name:"NAME" help:"one of ${projections}"`
		Online bool   `help:"Build the copy beside the live tables, which a server keeps serving and current, and switch it in."`
		Quiet  bool   `help:"Print no progress."`
	}
	projectionsVerifyCmd struct {
		Name  string `arg:"" name:"NAME" help:"one of ${projections}"`
		Quiet bool   `help:"Print no progress."`
		JSON  bool   `name:"json" help:"Print the report as JSON."`
		Limit int    `default:"20" help:"Rows shown per table and side."`
	}

	eventsCmd struct {
		Stream     string `help:"Only this stream."`
		StreamType string `help:"Only streams of this type."`
		Type       string `help:"Only these event types, comma separated."`
		After      string `help:"Start after this cursor (as printed in each line's \"cursor\")."`
		Follow     bool   `help:"Keep printing new events as they are committed."`
		Limit      int    `help:"Stop after this many events (0: no limit)."`
	}
	historyCmd struct {
		Stream string `arg:"" name:"STREAM" help:"a stream id: user-, session-, message- or memory-<id>"`
		JSON   bool   `name:"json" help:"Print NDJSON, one entry a line."`
	}
	auditCmd struct {
		User auditUserCmd `cmd:"" help:"Print every event of a user and of everything of theirs, in log order."`
	}
	auditUserCmd struct {
		ID   string `arg:"" name:"ID" help:"the user's id"`
		Type string `help:"Only these event types, comma separated."`
		JSON bool   `name:"json" help:"Print NDJSON, one event a line."`
	}
	replayCmd struct {
		Stream  string  `arg:"" name:"STREAM" help:"a stream id: user-, session-, message- or memory-<id>"`
		Version *int    `placeholder:"N" help:"The entity as it was at this version (1 or more)."`
		AsOf    *string `placeholder:"TIME" help:"The entity as it was at this RFC 3339 time."`
		JSON    bool    `name:"json" default:"true" help:"Print JSON (the only form)."`
	}
	exportCmd struct {
		Since string `placeholder:"TIME" help:"Only events recorded at or after this RFC 3339 time."`
		Quiet bool   `help:"Print no progress."`
	}
	importCmd struct {
		File   string `arg:"" name:"FILE" help:"an exported log, or - for stdin"`
		Force  bool   `help:"Import into a log that holds events already."`
		LogKey string `placeholder:"VKEY" help:"The exporting log's checkpoint verifier key: refuse the file unless it carries checkpoints all signed by it."`
		Quiet  bool   `help:"Print no progress."`
	}
	verifyCmd struct {
		Stream     string `placeholder:"S" help:"Verify this stream only."`
		Checkpoint string `placeholder:"FILE" type:"existingfile" help:"Check the log against this signed checkpoint too (a file the server wrote): every event it signed must still be there, unchanged and in place; the hashes are recomputed here, trusting nothing the database computes."`
		LogKey     string `name:"log-key" placeholder:"VKEY" help:"The verifier key the checkpoint must be signed for; by default the verifier key of the configured signing key (ARQ_LOG_SIGNING_KEY or its file)."`
		JSON       bool   `name:"json" help:"Print the result as JSON."`
		Quiet      bool   `help:"Print no progress."`
	}
	embeddingsCmd struct {
		Backfill embeddingsBackfillCmd `cmd:"" help:"Give live memories and messages without an embedding one from the provider (--embeddings-url), as update events."`
	}
	embeddingsBackfillCmd struct {
		Batch int  `default:"64" help:"Texts per request to the provider (1 to 100)."`
		Quiet bool `help:"Print no progress."`
	}
	memoriesCmd struct {
		Extract memoriesExtractCmd `cmd:"" help:"Run the extractor (--extractor) over a session's or a user's messages again, e.g. with a new model; its decisions are new events beside the old ones."`
	}
	memoriesExtractCmd struct {
		Session string `placeholder:"ID" help:"The session whose messages to read."`
		User    string `placeholder:"ID" help:"Every session of this user."`
		Since   string `placeholder:"TIME" help:"Only messages created at or after this time (RFC 3339, or a duration back from now such as 24h)."`
	}
	eraseCmd struct {
		User    eraseUserCmd    `cmd:"" help:"Erase a user (also one deleted before): profile, external id, sessions, messages, memories, summaries and snapshots; the user is deleted."`
		Message eraseMessageCmd `cmd:"" help:"Erase a message, with the summaries and context snapshots that hold its text; the rest of its session stays."`
		Memory  eraseMemoryCmd  `cmd:"" help:"Erase a memory (also one deleted or expired before)."`
	}
	// eraseTarget is what every erase command takes.
	eraseTarget struct {
		ID   string        `arg:"" name:"ID" help:"the id of what to erase"`
		Wait time.Duration `default:"${erase_wait}" help:"How long to wait for the projections (here or in a server) to apply the erasure before the cache is cleared; past it the command fails, and running it again finishes the erasure."`
	}
	eraseUserCmd struct {
		eraseTarget `embed:""`
	}
	eraseMessageCmd struct {
		eraseTarget `embed:""`
	}
	eraseMemoryCmd struct {
		eraseTarget `embed:""`
	}
	keysCmd struct {
		New    keysNewCmd    `cmd:"" help:"Print a new master key (base64 of 32 random bytes) for ARQ_MASTER_KEY or its file."`
		Rotate keysRotateCmd `cmd:"" help:"Rewrap with the current master key every data key wrapped by one of ARQ_PREVIOUS_MASTER_KEYS, and print how many; events are untouched."`
	}
	keysNewCmd    struct{}
	keysRotateCmd struct {
		Quiet bool `help:"Print no progress."`
	}
)

// Each command's Run hands it to the cli method that does it.
func (serveCmd) Run(ctx context.Context, c *cli) error   { return c.serve(ctx) }
func (migrateCmd) Run(ctx context.Context, c *cli) error { return c.migrate(ctx) }
func (projectCmd) Run(ctx context.Context, c *cli) error { return c.project(ctx) }
func (o mcpCmd) Run(ctx context.Context, c *cli) error   { return c.mcp(ctx, o) }
func (versionCmd) Run(c *cli) error {
	_, err := fmt.Fprintln(c.stdout, app.Version())
	return err
}
func (openapiCmd) Run(c *cli) error {
	doc, err := api.Document()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.stdout, string(doc))
	return err
}
func (o projectionsStatusCmd) Run(ctx context.Context, c *cli) error {
	return c.projectionsStatus(ctx, o)
}
func (o projectionsRebuildCmd) Run(ctx context.Context, c *cli) error {
	return c.projectionsRebuild(ctx, o)
}
func (o projectionsVerifyCmd) Run(ctx context.Context, c *cli) error {
	return c.projectionsVerify(ctx, o)
}
func (o eventsCmd) Run(ctx context.Context, c *cli) error    { return c.events(ctx, o) }
func (o historyCmd) Run(ctx context.Context, c *cli) error   { return c.history(ctx, o) }
func (o auditUserCmd) Run(ctx context.Context, c *cli) error { return c.audit(ctx, o) }
func (o replayCmd) Run(ctx context.Context, c *cli) error    { return c.replay(ctx, o) }
func (o exportCmd) Run(ctx context.Context, c *cli) error    { return c.export(ctx, o) }
func (o importCmd) Run(ctx context.Context, c *cli) error    { return c.importLog(ctx, o) }
func (o verifyCmd) Run(ctx context.Context, c *cli) error    { return c.verify(ctx, o) }
func (o embeddingsBackfillCmd) Run(ctx context.Context, c *cli) error {
	return c.embeddingsBackfill(ctx, o)
}
func (o eraseUserCmd) Run(ctx context.Context, c *cli) error {
	return c.erase(ctx, "user", o.eraseTarget)
}
func (o eraseMessageCmd) Run(ctx context.Context, c *cli) error {
	return c.erase(ctx, "message", o.eraseTarget)
}
func (o eraseMemoryCmd) Run(ctx context.Context, c *cli) error {
	return c.erase(ctx, "memory", o.eraseTarget)
}
func (o memoriesExtractCmd) Run(ctx context.Context, c *cli) error {
	return c.memoriesExtract(ctx, o)
}
func (keysNewCmd) Run(c *cli) error                           { return c.keysNew() }
func (o keysRotateCmd) Run(ctx context.Context, c *cli) error { return c.keysRotate(ctx, o) }

const description = `arq — memory and context store for AI assistants.

Every setting is an ARQ_* environment variable and a flag of the same name
(ARQ_HTTP_ADDR, --http-addr); the flag overrides the variable. 'arq COMMAND
--help' lists a command's arguments and flags, the settings among them.`

// grammarOptions are the kong options of arq's command line.
func grammarOptions(getenv func(string) string, stdout, stderr io.Writer) []kong.Option {
	return append(app.SettingOptions(getenv),
		kong.Name("arq"),
		kong.Description(description),
		kong.Writers(stdout, stderr),
		// --version -3 is a version, refused as such, not a flag -3.
		kong.WithHyphenPrefixedParameters(true),
		kong.Exit(func(code int) { panic(exitRequest(code)) }),
		kong.Vars{"projections": strings.Join(app.ProjectionNames(), ", "), "erase_wait": defaultEraseWait.String()},
		kong.ConfigureHelp(kong.HelpOptions{FlagsLast: true, WrapUpperBound: 100}),
		kong.Help(helpWithoutSettings),
	)
}

// helpWithoutSettings prints kong's help, leaving the settings out of the
// help of arq and of a group of commands (projections, audit,
// embeddings, erase, keys): there the commands are what is asked for, and the help of
// each command lists them.
func helpWithoutSettings(opts kong.HelpOptions, ctx *kong.Context) error {
	if node := ctx.Selected(); node == nil || !node.Leaf() {
		for _, f := range ctx.Model.Flags {
			if f.Tag.Get("var") != "" && !f.Hidden {
				f.Hidden = true
				defer func() { f.Hidden = false }()
			}
		}
	}
	return kong.DefaultHelpPrinter(opts, ctx)
}

// mistake turns kong's account of a command line it could not read into
// one line that names the fix.
func mistake(err error) error {
	var se *app.SettingError
	if errors.As(err, &se) {
		return se
	}
	var perr *kong.ParseError
	if !errors.As(err, &perr) || perr.Context == nil {
		return usagef("%v", err)
	}
	node := perr.Context.Selected()
	if node == nil {
		node = perr.Context.Model.Node
	}
	path := node.FullPath() // "arq projections rebuild"
	where := strings.TrimPrefix(path, "arq ")
	if node.Type == kong.ApplicationNode {
		where = ""
	}
	msg := perr.Error()
	switch {
	case strings.HasPrefix(msg, "unknown flag"):
		return usagef("%s; '%s --help' lists the flags", msg, path)
	case strings.HasPrefix(msg, "expected one of") || (strings.HasPrefix(msg, "expected") && len(node.Children) > 0):
		return usagef("%s needs a command: %s; '%s --help' lists them", orArq(where), commandNames(node), path)
	case strings.HasPrefix(msg, "unexpected argument") && len(node.Children) > 0:
		arg := strings.TrimPrefix(msg, "unexpected argument ")
		arg, _, _ = strings.Cut(arg, ",")
		return usagef("unknown command %s; '%s --help' lists the commands", strings.TrimSpace(where+" "+arg), path)
	case strings.HasPrefix(msg, "expected"):
		for _, p := range node.Positional {
			if !p.Set {
				return usagef("%s: expected %s (%s)", where, p.Name, p.Help)
			}
		}
	case strings.HasPrefix(msg, "unexpected argument"):
		return usagef("%s: %s; '%s --help' lists its arguments", where, msg, path)
	}
	if where == "" {
		return usagef("%s; '%s --help' lists the flags", msg, path)
	}
	return usagef("%s: %s; '%s --help' lists its arguments and flags", where, msg, path)
}

func orArq(where string) string {
	if where == "" {
		return "arq"
	}
	return where
}

// commandNames lists node's subcommands: "status, rebuild or verify".
func commandNames(node *kong.Node) string {
	var names []string
	for _, ch := range node.Children {
		if !ch.Hidden {
			names = append(names, ch.Name)
		}
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
