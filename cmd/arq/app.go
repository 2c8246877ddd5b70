package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/api"
	"github.com/arq-memory/arq/cache"
	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/embeddings"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/history"
	"github.com/arq-memory/arq/internal/pgcancel"
	"github.com/arq-memory/arq/live"
	"github.com/arq-memory/arq/metrics"
	"github.com/arq-memory/arq/migrations"
	"github.com/arq-memory/arq/projections"
	"github.com/arq-memory/arq/projections/readmodel"
	"github.com/arq-memory/arq/summarize"
	"github.com/arq-memory/arq/tokens"
)

// registered lists every projection the binary runs, in the order their
// status is shown.
func registered() []projections.Projection {
	return append([]projections.Projection{projections.Streams{}}, readmodel.All()...)
}

// App is one arq process, wired by hand: its Postgres pools, event store,
// notifier, projection engine and HTTP server.
type App struct {
	cfg      Config
	log      *slog.Logger
	pool     *pgxpool.Pool // commands and reads
	projPool *pgxpool.Pool // projector transactions
	store    *eventstore.Store
	notifier *eventstore.Notifier
	engine   *projections.Engine
	reader   *readmodel.Reader
	commands *commands.Service
	waiter   *projections.Waiter
	expirer  *commands.Expirer
	// Context windows: token counting, the log's past versions of items,
	// and the workers that record snapshots and make summaries.
	cache    *cache.Cache
	entities api.EntityReader
	// namespace keeps apart the Redis keys and live topics of deployments
	// sharing one Redis (see redisNamespace).
	namespace   string
	hub         *live.Hub
	relay       *live.Relay
	feed        func(context.Context) error
	closeLive   func() // closes the Redis client of live updates
	tokens      domain.TokenCounter
	history     *history.Reader
	snapshotter *commands.Snapshotter
	summaries   *commands.SummaryWorker
	// streamWriteTimeout bounds each write of an event stream (SSE); 0
	// takes the API's default. Tests shorten it.
	streamWriteTimeout time.Duration
}

// setup creates the database if it is missing and migrates it; serve and
// migrate do this, the other commands expect a migrated database.
func setup(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := migrations.EnsureDatabase(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	return migrations.Apply(ctx, cfg.DatabaseURL, log)
}

// open connects to the database and builds the process's parts.
func open(ctx context.Context, cfg Config, log *slog.Logger, ps []projections.Projection) (*App, error) {
	pcfg, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	pcfg.MaxConns = int32(cfg.DBMaxConns)
	pgcancel.OnServer(&pcfg.ConnConfig.Config)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("connect to Postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to Postgres at %s: %w", pcfg.ConnConfig.Host, err)
	}

	// A projection's writes and its checkpoint commit together, so a
	// projector commit lost in a crash loses both and is redone from the
	// log: projector transactions need not wait for the WAL flush.
	ppcfg := pcfg.Copy()
	ppcfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	ppcfg.ConnConfig.RuntimeParams["application_name"] = "arq-projector"
	ppcfg.MaxConns = int32(len(ps) + 2)
	projPool, err := pgxpool.NewWithConfig(ctx, ppcfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect projector pool: %w", err)
	}

	a := &App{cfg: cfg, log: log, pool: pool, projPool: projPool}
	a.notifier = eventstore.NewNotifier(pool, log)
	a.store = eventstore.New(pool, eventstore.WithAppendHook(a.notifier.Notify), eventstore.WithGroupCommit(cfg.AppendBatches),
		eventstore.WithLogger(log))
	a.engine, err = projections.NewEngine(projPool, a.notifier, ps, projections.Config{}, log)
	if err != nil {
		a.Close()
		return nil, err
	}
	tc, err := tokens.New(cfg.TokenEncoding)
	if err != nil {
		a.Close()
		return nil, err
	}
	a.reader = readmodel.NewReader(pool)
	a.commands = commands.New(a.store, tc, messageFinder{a.reader}, time.Now)
	emb := commands.Embeddings{Dim: cfg.EmbeddingDim, Log: log}
	if cfg.EmbeddingsURL != "" {
		emb.Provider = embeddings.OpenAI{URL: cfg.EmbeddingsURL, Model: cfg.EmbeddingsModel, APIKey: cfg.EmbeddingsAPIKey,
			Client: &http.Client{Timeout: cfg.EmbeddingsTimeout}}
	}
	a.commands.SetEmbeddings(emb)
	// Commands wait for every projection of the binary, also when they run
	// in another process (arq project); then no commit signal comes from
	// this process and the waiter polls.
	var signal *projections.Signal
	if cfg.Projections {
		signal = a.engine.Committed()
	}
	a.waiter = projections.NewWaiter(pool, names(registered()), signal)
	a.expirer = commands.NewExpirer(a.commands, dueFinder{a.reader}, cfg.ExpiryInterval, log)
	a.tokens = tc
	if a.cache, err = cache.New(cfg.RedisURL, cfg.CacheMemoryBytes, log); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.wireRedis(ctx, pcfg.ConnConfig.Database); err != nil {
		a.Close()
		return nil, err
	}
	a.history = history.New(a.store)
	a.snapshotter = commands.NewSnapshotter(a.commands, snapshotSource{a.reader, tc}, cfg.BackgroundInterval, log)
	var summarizer domain.Summarizer = summarize.Extractive{MaxTokens: cfg.SummaryMaxTokens, Tokens: tc}
	if cfg.Summarizer == "chat" {
		summarizer = summarize.Chat{URL: cfg.SummarizerURL, Model: cfg.SummarizerModel, APIKey: cfg.SummarizerAPIKey,
			Client: &http.Client{Timeout: 60 * time.Second}}
	}
	a.summaries = commands.NewSummaryWorker(a.commands, summarySource{a.reader, cfg.SummaryThreshold, cfg.SummaryRecent}, summarizer, cfg.BackgroundInterval, log)
	return a, nil
}

// Close releases the database and Redis connections.
func (a *App) Close() {
	if a.closeLive != nil {
		a.closeLive()
	}
	if a.cache != nil {
		_ = a.cache.Close()
	}
	// A pool's Close waits for the connections in use to come back: one
	// held by work stuck past the shutdown (an append waiting for a lock
	// held elsewhere) would keep the process from exiting.
	closed := make(chan struct{})
	go func() {
		a.projPool.Close()
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

// runParts runs the notifier, and the projection engine if asked, until ctx
// ends; it returns a wait function for their end. fail hears of a part
// that ends early; the engine ends early when every projection stopped on
// a failing event.
func (a *App) runParts(ctx context.Context, withEngine bool, fail func(error)) (wait func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := a.notifier.Run(ctx); err != nil {
			fail(fmt.Errorf("notifier: %w", err))
		}
	}()
	if withEngine {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// An engine that could not start (the database refused a
			// statement) starts again, after a pause that grows.
			for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
				err := a.engine.Run(ctx)
				switch {
				case ctx.Err() != nil:
					return
				case err == nil:
					fail(errors.New("every projection stopped on a failing event; see 'arq projections status'"))
					return
				}
				a.log.Error("projections failed to run; starting them again", "retry_in", wait, "err", err)
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	return wg.Wait
}

// Serve runs the HTTP API (and projections, unless configured off) until
// ctx ends, then stops gracefully. ready, if not nil, receives the address
// the server listens on.
func (a *App) Serve(ctx context.Context, ready func(addr string)) error {
	ln, err := net.Listen("tcp", a.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.cfg.HTTPAddr, err)
	}
	defer ln.Close() // Serve closes it too; this is for an early return
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The background parts (projections, workers) outlive ctx until the
	// HTTP server has drained: requests in flight still see projections
	// move, and get their read-your-writes answers.
	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	rebuilds := projections.NewRebuilds(bg, a.pool, a.notifier, registered(), a.log)
	defer rebuilds.Wait()
	m, err := a.metrics()
	if err != nil {
		return err
	}
	stopping := make(chan struct{})
	srv := &http.Server{
		Handler: api.New(api.Deps{
			DB:           a.pool,
			Projections:  names(registered()),
			Log:          a.log,
			AdminKey:     a.cfg.AdminKey,
			CORSOrigins:  a.cfg.CORSOrigins,
			MaxBodyBytes: a.cfg.MaxBodyBytes,
			Resources: api.Resources{
				DB: a.pool, Commands: a.commands, Reader: a.reader, Waiter: a.waiter, Tokens: a.tokens, History: a.history, Cache: a.cache, CacheNamespace: a.namespace, Entities: a.entities, Store: a.store, Live: a.hub,
				Projections: names(registered()), ReadYourWrites: a.cfg.ReadYourWrites, MinPositionWait: a.cfg.MinPositionWait,
				Rebuilds: rebuilds, Stopping: stopping, StreamWriteTimeout: a.streamWriteTimeout,
			},
			Metrics: m,
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	srv.RegisterOnShutdown(func() { close(stopping) })

	// The API keeps serving when projections stop: /readyz reports it.
	wait := a.runParts(bg, a.cfg.Projections, func(err error) { a.log.Error("background part ended", "err", err) })
	var workers sync.WaitGroup
	for name, run := range map[string]func(context.Context) error{
		"expiry": a.expirer.Run, "context snapshots": a.snapshotter.Run, "summaries": a.summaries.Run,
		"live relay": a.relay.Run, "live feed": a.feed, "idempotency keys": a.pruneIdempotencyKeys,
	} {
		workers.Add(1)
		go func() {
			defer workers.Done()
			if err := run(bg); err != nil {
				a.log.Error("background worker ended", "worker", name, "err", err)
			}
		}()
	}
	defer workers.Wait()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.log.Info("arq serving", "addr", ln.Addr().String(), "projections", a.cfg.Projections)
	if ready != nil {
		ready(ln.Addr().String())
	}

	var serveErr error
	select {
	case serveErr = <-errc:
		cancel(serveErr)
	case <-ctx.Done():
	}
	shutdownCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
	defer stop()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close() // the requests still open after the timeout
		serveErr = errors.Join(serveErr, fmt.Errorf("shut down HTTP server: %w", err))
	}
	cancel(nil)
	stopBackground()
	wait()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return errors.Join(serveErr, cause)
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		return nil
	}
	return serveErr
}

// pruneIdempotencyKeys deletes the answers kept for idempotent retries
// once their day is over, at start and then every hour, until ctx ends.
func (a *App) pruneIdempotencyKeys(ctx context.Context) error {
	store := api.NewIdempotencyStore(a.pool)
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := store.Prune(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			a.log.Warn("idempotency keys: prune failed", "err", err)
		case n > 0:
			a.log.Info("idempotency keys: pruned answers past their day", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// metrics returns the process's registry: the API's requests, where every
// projection stands, this process's projectors and Postgres pools.
func (a *App) metrics() (*metrics.Metrics, error) {
	m := metrics.New()
	batches := a.engine.Stats
	if !a.cfg.Projections {
		batches = func() map[string]projections.BatchStats { return nil }
	}
	err := m.Register(
		metrics.Projections{Batches: batches, Head: a.store.Head, Log: a.log,
			States: func(ctx context.Context) ([]projections.Status, error) {
				return projections.States(ctx, a.pool, names(registered()))
			}},
		metrics.Pools{"api": a.pool, "projector": a.projPool},
	)
	if err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return m, nil
}

func names(ps []projections.Projection) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name()
	}
	return out
}
