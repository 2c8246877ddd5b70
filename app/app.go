// Package app is one arq process, wired by hand: its Postgres pools, event
// store, projection engine, commands, caches, live updates and HTTP
// server. A command opens what it needs and no more (Open's parts); the
// binary in cmd/arq parses flags and prints, end-to-end tests drive the
// same App.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"

	"github.com/arq-memory/arq/api"
	"github.com/arq-memory/arq/cache"
	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/embeddings"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/history"
	"github.com/arq-memory/arq/idempotency"
	"github.com/arq-memory/arq/internal/pgcancel"
	"github.com/arq-memory/arq/ledger"
	"github.com/arq-memory/arq/live"
	"github.com/arq-memory/arq/migrations"
	"github.com/arq-memory/arq/projections"
	"github.com/arq-memory/arq/projections/readmodel"
	"github.com/arq-memory/arq/queries"
	"github.com/arq-memory/arq/ratelimit"
	"github.com/arq-memory/arq/summarize"
	"github.com/arq-memory/arq/tokens"
	"github.com/arq-memory/arq/vault"
)

// Projections lists every projection the binary runs, in the order their
// status is shown.
func Projections() []projections.Projection {
	return append([]projections.Projection{projections.Streams{}}, readmodel.All()...)
}

// ProjectionNames are the names of Projections, in order.
func ProjectionNames() []string { return names(Projections()) }

// Part is a part of the process that Open builds beyond the event log,
// which every command needs.
type Part uint8

// The parts of a process. Each includes what it is built on.
const (
	// PartProjector is the projection engine over Options.Projections.
	PartProjector Part = 1 << iota
	// PartCommands is the command service: token counting, embeddings,
	// the query tables' reader and the read-your-writes waiter.
	PartCommands
	// PartServer is all a server needs: commands, projector, the Redis
	// cache and live updates, and the background workers.
	PartServer
)

// Options are what Open builds beyond the configuration.
type Options struct {
	// Parts to build beyond the event log; see Part.
	Parts Part
	// Projections the projector runs; nil: every one (Projections).
	Projections []projections.Projection
	// StreamWriteTimeout bounds each write of an event stream (SSE); 0
	// takes the API's default. Tests shorten it.
	StreamWriteTimeout time.Duration
	// WrapEntities, when set, wraps the entity reader the API reads by id
	// (tests put a failing one in front).
	WrapEntities func(api.EntityReader) api.EntityReader
	// WrapKeys, when set, wraps the key store the API looks keys up in
	// (tests count its lookups).
	WrapKeys func(api.KeyStore) api.KeyStore
	// MakeMasterKey makes the master key file when no key is configured
	// and the file is missing (serve, migrate).
	MakeMasterKey bool
	// WithoutKeys opens the log without the key store and master key:
	// for the commands that check or copy the log as stored (verify,
	// export, import), whose reads leave people's data sealed. No part
	// may be asked for with it.
	WithoutKeys bool
	// DatabaseName, when set, is the database name the Redis namespace
	// takes instead of the database's own (tests of deployments on
	// different clusters whose databases are named alike).
	DatabaseName string
	// ConsolidationExtractor, when set, decides the near-duplicates of
	// memory consolidations instead of the configured extractor
	// (ARQ_EXTRACTOR): tests put a deterministic fake.
	ConsolidationExtractor domain.Extractor
}

// App is one arq process.
type App struct {
	cfg  Config
	opt  Options
	log  *slog.Logger
	pool *pgxpool.Pool // commands and reads
	// projPool holds the projector's transactions; nil without a projector.
	projPool *pgxpool.Pool
	store    *eventstore.Store
	notifier *eventstore.Notifier
	// vault seals and opens people's data in the log; nil WithoutKeys.
	vault *vault.Vault
	// keyPool is the key store's own pool, when it is not the log's.
	keyPool *pgxpool.Pool
	history *history.Reader
	ps      []projections.Projection
	// tree is the log's Merkle tree; signer and origin sign its
	// checkpoints (with PartProjector, when a signing key is set).
	tree   *ledger.Tree
	signer note.Signer
	origin string
	// logStatus is what the server's check of the log last found.
	logStatus logStatus

	// With PartProjector.
	engine *projections.Engine
	// With PartCommands.
	reader   *readmodel.Reader
	commands *commands.Service
	waiter   *projections.Waiter
	tokens   domain.TokenCounter
	// embedder is the embeddings provider commands and queries share;
	// nil: none.
	embedder domain.Embedder
	// With PartServer.
	cache    *cache.Cache
	vectors  *readmodel.VectorCache // nil: none
	entities queries.EntityReader
	windows  queries.WindowReader
	queries  *queries.Service
	// namespace keeps apart the Redis keys and live topics of deployments
	// sharing one Redis (see RedisNamespace).
	namespace string
	hub       *live.Hub
	relay     *live.Relay
	feed      func(context.Context) error
	closeLive func() // closes the Redis client of live updates
	// limiter counts the requests against the rate limits.
	limiter     *ratelimit.Limiter
	expirer     *commands.Expirer
	snapshotter *commands.Snapshotter
	summaries   *commands.SummaryWorker
	// extraction runs the extractor (nil when ARQ_EXTRACTOR is off);
	// extractions runs it in the background (PartServer).
	extraction  *commands.Extraction
	extractions *commands.ExtractionWorker
	// eraser erases to the end (the server's waits as its commands do,
	// and clears its cache); retention erases old messages.
	eraser    *commands.Eraser
	retention *commands.Retention
}

// Migrate creates the database if it is missing and migrates it; serve,
// migrate and import do this, the other commands expect a migrated
// database.
func Migrate(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := migrations.EnsureDatabase(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	if err := migrations.Apply(ctx, cfg.DatabaseURL, log); err != nil {
		return err
	}
	url := cfg.KeystoreURL
	if url == "" {
		url = cfg.DatabaseURL
	} else if err := migrations.EnsureDatabase(ctx, url); err != nil {
		return fmt.Errorf("key store: %w", err)
	}
	if err := migrations.ApplyKeyStore(ctx, url, log); err != nil {
		return fmt.Errorf("key store: %w", err)
	}
	return nil
}

// Vault seals and opens people's data and erases it; nil for a process
// opened WithoutKeys.
func (a *App) Vault() *vault.Vault { return a.vault }

// Open connects to the database and builds the event log and the parts
// opt asks for.
func Open(ctx context.Context, cfg Config, log *slog.Logger, opt Options) (*App, error) {
	if opt.Parts&PartServer != 0 {
		opt.Parts |= PartCommands | PartProjector
	}
	if opt.Projections == nil {
		opt.Projections = Projections()
	}
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	pcfg.MaxConns = int32(cfg.DBMaxConns)
	pgcancel.OnServerPool(pcfg)
	// Every connection, the projector's and the key store's included, runs
	// as the server's role, which cannot change the log.
	migrations.AsServer(pcfg.ConnConfig)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("connect to Postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to Postgres at %s as role %s (made by arq migrate, run as the database's owner): %w",
			pcfg.ConnConfig.Host, migrations.ServerRole, err)
	}
	a := &App{cfg: cfg, opt: opt, log: log, pool: pool, ps: opt.Projections}
	storeOpts := []eventstore.Option{eventstore.WithGroupCommit(cfg.AppendBatches), eventstore.WithLogger(log)}
	if opt.WithoutKeys {
		if opt.Parts != 0 {
			pool.Close()
			return nil, errors.New("app: a process without keys can build no part")
		}
	} else {
		if err := a.openVault(ctx, pool); err != nil {
			a.Close()
			return nil, err
		}
		storeOpts = append(storeOpts, eventstore.WithSealer(a.vault))
	}
	a.notifier = eventstore.NewNotifier(pool, log)
	a.store = eventstore.New(pool, append(storeOpts, eventstore.WithAppendHook(a.notifier.Notify))...)
	a.history = history.New(a.store)
	a.tree = ledger.NewTree(pool, log)
	for _, build := range []func(context.Context, *pgxpool.Config) error{a.openProjector, a.openCommands, a.openServer} {
		if err := build(ctx, pcfg); err != nil {
			a.Close()
			return nil, err
		}
	}
	return a, nil
}

// openProjector builds the projection engine, on a pool of its own.
func (a *App) openProjector(ctx context.Context, pcfg *pgxpool.Config) error {
	if a.opt.Parts&PartProjector == 0 {
		return nil
	}
	// A projection's writes and its checkpoint commit together, so a
	// projector commit lost in a crash loses both and is redone from the
	// log: projector transactions need not wait for the WAL flush.
	ppcfg := pcfg.Copy()
	ppcfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	ppcfg.ConnConfig.RuntimeParams["application_name"] = "arq-projector"
	ppcfg.MaxConns = int32(len(a.ps) + 2)
	projPool, err := pgxpool.NewWithConfig(ctx, ppcfg)
	if err != nil {
		return fmt.Errorf("connect projector pool: %w", err)
	}
	a.projPool = projPool
	a.engine, err = projections.NewEngine(projPool, a.notifier, a.ps, projections.Config{Opener: a.projectionOpener()}, a.log)
	if err != nil {
		return err
	}
	return a.openSigner(ctx)
}

// projectionOpener opens the events projections apply: with the data keys
// the process read within the last minute, as projections apply events
// as soon as they are appended, and an erasure clears their tables by an
// event of its own. Nil (events as stored) for a process without keys.
func (a *App) projectionOpener() eventstore.Opener {
	if a.vault == nil {
		return nil
	}
	return a.vault.Recent()
}

// openCommands builds the command service and what it reads with.
func (a *App) openCommands(ctx context.Context, _ *pgxpool.Config) error {
	if a.opt.Parts&PartCommands == 0 {
		return nil
	}
	cfg := a.cfg
	tc, err := tokens.New(cfg.TokenEncoding)
	if err != nil {
		return err
	}
	a.tokens = tc
	// The reader hands out what it reads from the log (windows as they
	// were): opened with keys read afresh, as the store's reads are.
	// A server keeps its users' embeddings in memory for vector
	// rankings (see readmodel.VectorCache); other processes rank none.
	if a.opt.Parts&PartServer != 0 {
		if a.vectors, err = readmodel.NewVectorCache(cfg.VectorCacheBytes); err != nil {
			return err
		}
	}
	a.reader = readmodel.NewReader(a.pool, readmodel.OpenEventsWith(a.store), readmodel.CacheVectorsIn(a.vectors))
	a.commands = commands.New(a.store, tc, messageFinder{a.reader}, time.Now)
	emb := commands.Embeddings{Dim: cfg.EmbeddingDim, Log: a.log}
	if cfg.EmbeddingsURL != "" {
		a.embedder = embeddings.OpenAI{URL: cfg.EmbeddingsURL, Model: cfg.EmbeddingsModel, APIKey: cfg.EmbeddingsAPIKey,
			Client: &http.Client{Timeout: cfg.EmbeddingsTimeout}}
		emb.Provider = a.embedder
	}
	a.commands.SetEmbeddings(emb)
	a.commands.SetNamer(a.vault)
	a.commands.SetErasure(commands.Erasure{Shredder: a.vault, Answers: answerEraser{idempotency.New(a.pool)}})
	a.openExtraction()
	// Commands wait for every projection of the binary, also when they run
	// in another process (arq project); then no commit signal comes from
	// this process and the waiter polls.
	var signal *projections.Signal
	if a.engine != nil && cfg.Projections {
		signal = a.engine.Committed()
	}
	a.waiter = projections.NewWaiter(a.pool, ProjectionNames(), signal).Knowing(Projections(), a.notifier)
	return nil
}

// openServer builds the Redis cache, live updates and background workers.
func (a *App) openServer(ctx context.Context, pcfg *pgxpool.Config) error {
	if a.opt.Parts&PartServer == 0 {
		return nil
	}
	cfg := a.cfg
	var err error
	if a.cache, err = cache.New(cfg.RedisURL, cfg.CacheMemoryBytes, a.log); err != nil {
		return err
	}
	if err := a.wireRedis(ctx, pcfg.ConnConfig.Database); err != nil {
		return err
	}
	if a.limiter, err = ratelimit.New(a.cache.Client(), a.namespace, a.log); err != nil {
		return err
	}
	if a.opt.WrapEntities != nil {
		a.entities = a.opt.WrapEntities(a.entities)
	}
	a.queries = queries.New(queries.Config{Reader: a.reader, Tokens: a.tokens, Entities: a.entities, Windows: a.windows,
		Embedder: a.embedder, EmbeddingDim: cfg.EmbeddingDim, Log: a.log})
	a.expirer = commands.NewExpirer(a.commands, dueFinder{a.reader}, cfg.ExpiryInterval, a.log)
	a.eraser = commands.NewEraser(a.commands, a.waiter, forgetters{cache.NewForgetter(a.cache, a.namespace), a.vectors}, cfg.ReadYourWrites)
	a.retention = commands.NewRetention(a.eraser, a.reader, cfg.Retention, cfg.BackgroundInterval, a.log)
	a.snapshotter = commands.NewSnapshotter(a.commands, NewSnapshotSource(a.reader, a.tokens, a.history), cfg.BackgroundInterval, a.log)
	var summarizer domain.Summarizer = summarize.Extractive{MaxTokens: cfg.SummaryMaxTokens, Tokens: a.tokens}
	if cfg.Summarizer == "chat" {
		summarizer = summarize.Chat{URL: cfg.SummarizerURL, Model: cfg.SummarizerModel, APIKey: cfg.SummarizerAPIKey,
			Client: &http.Client{Timeout: 60 * time.Second}}
	}
	a.summaries = commands.NewSummaryWorker(a.commands, summarySource{a.reader, cfg.SummaryThreshold, cfg.SummaryRecent}, summarizer, cfg.BackgroundInterval, a.log)
	return nil
}

// Close releases the database and Redis connections.
func (a *App) Close() {
	if a.closeLive != nil {
		a.closeLive()
	}
	if a.cache != nil {
		_ = a.cache.Close()
	}
	a.vectors.Close()
	// A pool's Close waits for the connections in use to come back: one
	// held by work stuck past the shutdown (an append waiting for a lock
	// held elsewhere) would keep the process from exiting.
	closed := make(chan struct{})
	go func() {
		if a.projPool != nil {
			a.projPool.Close()
		}
		if a.keyPool != nil {
			a.keyPool.Close()
		}
		a.pool.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(closeWait):
		a.log.Warn("database connections still in use at exit; leaving them", "after", closeWait)
	}
}

// closeWait bounds how long Close waits for connections in use.
const closeWait = 5 * time.Second

// Store is the event log.
func (a *App) Store() *eventstore.Store { return a.store }

// Notifier tells of new events in the log.
func (a *App) Notifier() *eventstore.Notifier { return a.notifier }

// History reads entities as they were, and audits, from the log.
func (a *App) History() *history.Reader { return a.history }

// Commands is the command service; nil without PartCommands.
func (a *App) Commands() *commands.Service { return a.commands }

// Backfiller gives live texts without an embedding one from the
// configured provider; it needs PartCommands.
func (a *App) Backfiller() *commands.Backfiller {
	return commands.NewBackfiller(a.commands, a.reader.MissingEmbeddings())
}

// Pool is the pool commands and reads use. Tests and benchmarks read the
// database through it; the binary does not.
func (a *App) Pool() *pgxpool.Pool { return a.pool }

// Namespace is the deployment's part of every Redis key and live topic;
// empty without PartServer.
func (a *App) Namespace() string { return a.namespace }

// Log is the process's logger.
func (a *App) Log() *slog.Logger { return a.log }

func names(ps []projections.Projection) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name()
	}
	return out
}
