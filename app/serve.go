package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/arq-memory/arq/api"
	"github.com/arq-memory/arq/idempotency"
	"github.com/arq-memory/arq/keys"
	"github.com/arq-memory/arq/mcpserver"
	"github.com/arq-memory/arq/metrics"
	"github.com/arq-memory/arq/owners"
	"github.com/arq-memory/arq/projections"
)

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
			a.keepLedger(ctx)
		}()
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

// Serve runs the HTTP API, with its MCP face at /mcp (and projections,
// unless configured off) until ctx ends, then stops gracefully. ready, if
// not nil, receives the address the server listens on.
func (a *App) Serve(ctx context.Context, ready func(addr string)) error {
	ln, err := net.Listen("tcp", a.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.cfg.HTTPAddr, err)
	}
	defer ln.Close() // Serve closes it too; this is for an early return
	return a.serving(ctx, func(ctx context.Context, handler http.Handler, stopping chan<- struct{}) error {
		faces := mcpserver.New(handler, mcpserver.Options{Version: Version(), Log: a.log, MaxBodyBytes: a.cfg.MaxBodyBytes})
		srv := &http.Server{
			Handler: mcpserver.Front(handler, faces.Handler()),
			// A client has RequestReadTimeout to send its request, headers
			// and body: a body dribbled slower is cut (the connection
			// closed), never left holding a handler and a connection. It
			// bounds the reading only, not the answer, so event streams (no
			// body) run on.
			ReadHeaderTimeout: min(a.cfg.RequestReadTimeout, 10*time.Second),
			ReadTimeout:       a.cfg.RequestReadTimeout,
		}
		srv.RegisterOnShutdown(func() { close(stopping) })
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		a.log.Info("arq serving", "addr", ln.Addr().String(), "projections", a.cfg.Projections, "version", Version())
		if ready != nil {
			ready(ln.Addr().String())
		}
		var serveErr error
		select {
		case serveErr = <-errc:
		case <-ctx.Done():
		}
		shutdownCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
		defer stop()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			_ = srv.Close() // the requests still open after the timeout
			serveErr = errors.Join(serveErr, fmt.Errorf("shut down HTTP server: %w", err))
		}
		if errors.Is(serveErr, http.ErrServerClosed) {
			serveErr = nil
		}
		return serveErr
	})
}

// ServeMCP serves the API's MCP face on t (stdio for `arq mcp`) until the
// client disconnects or ctx ends, with the projections and workers Serve
// runs, and no port. Each tool call is a request to the API carrying key
// (empty: none, which an API without keys accepts).
func (a *App) ServeMCP(ctx context.Context, t mcp.Transport, key string) error {
	return a.serving(ctx, func(ctx context.Context, handler http.Handler, stopping chan<- struct{}) error {
		defer close(stopping)
		a.log.Info("arq serving MCP", "projections", a.cfg.Projections, "version", Version())
		return mcpserver.New(handler, mcpserver.Options{Key: key, Version: Version(), Log: a.log}).Run(ctx, t)
	})
}

// serving builds the API's handler and runs what it needs in the
// background (projections, unless configured off, and the workers) while
// front serves it; front closes stopping when it begins to stop (open
// event streams then end). The background outlives front's ctx until
// front returns: requests in flight still see projections move, and get
// their read-your-writes answers.
func (a *App) serving(ctx context.Context, front func(ctx context.Context, handler http.Handler, stopping chan<- struct{}) error) error {
	if err := projections.DropAbandonedCopies(ctx, a.pool, Projections(), a.log); err != nil {
		a.log.Warn("could not drop the copies interrupted online rebuilds left", "err", err)
	}
	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	rebuilds := projections.NewRebuilds(bg, a.pool, a.notifier, Projections(), a.projectionOpener(), a.log)
	defer rebuilds.Wait()
	m, err := a.metrics()
	if err != nil {
		return err
	}
	var keyStore api.KeyStore = keys.New(a.pool)
	if a.opt.WrapKeys != nil {
		keyStore = a.opt.WrapKeys(keyStore)
	}
	stopping := make(chan struct{})
	handler := api.New(api.Deps{
		Log:          a.log,
		Health:       health{a.pool, ProjectionNames()},
		Redis:        a.cache,
		Keys:         keyStore,
		Owners:       owners.New(a.store),
		Idempotency:  idempotency.New(a.pool),
		AdminKey:     a.cfg.AdminKey,
		CORSOrigins:  a.cfg.CORSOrigins,
		MaxBodyBytes: a.cfg.MaxBodyBytes,
		RateLimits:   a.rateLimits(),
		Resources: api.Resources{
			Queries: a.queries, Commands: a.commands, Erasures: a.eraser, Waiter: a.waiter, History: a.history, Store: a.store, Live: a.hub,
			ReadYourWrites: a.cfg.ReadYourWrites, MinPositionWait: a.cfg.MinPositionWait, MaxContextTokens: a.cfg.MaxContextTokens,
			Rebuilds: rebuilds, Stopping: stopping, StreamWriteTimeout: a.opt.StreamWriteTimeout,
			Consolidator: a.consolidation(),
		},
		Metrics:  m,
		Version:  Version(),
		Ledger:   a.tree,
		LogCheck: &a.logStatus,
	})

	// The API keeps serving when projections stop: /readyz reports it.
	wait := a.runParts(bg, a.cfg.Projections, func(err error) { a.log.Error("background part ended", "err", err) })
	waitVerifier, err := a.startLogVerifier(bg)
	if err != nil {
		stopBackground()
		wait()
		return err
	}
	defer waitVerifier()
	var workers sync.WaitGroup
	for name, run := range map[string]func(context.Context) error{
		"expiry": a.expirer.Run, "context snapshots": a.snapshotter.Run, "summaries": a.summaries.Run,
		"live relay": a.relay.Run, "live feed": a.feed, "idempotency keys": a.pruneIdempotencyKeys,
		"retention": a.retention.Run, "extraction": a.runExtractions,
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

	serveErr := front(ctx, handler, stopping)
	stopBackground()
	wait()
	workers.Wait()
	rebuilds.Wait()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		serveErr = errors.Join(serveErr, cause)
	}
	a.stopped(serveErr)
	return serveErr
}

// stopped logs the end of a serving or projecting process, once.
func (a *App) stopped(err error) {
	if err != nil {
		a.log.Error("arq stopped", "version", Version(), "err", err)
		return
	}
	a.log.Info("arq stopped", "version", Version())
}

// pruneIdempotencyKeys deletes the answers kept for idempotent retries
// once their day is over, at start and then every hour, until ctx ends.
func (a *App) pruneIdempotencyKeys(ctx context.Context) error {
	return idempotency.New(a.pool).PruneEvery(ctx, time.Hour, a.log)
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
				return projections.States(ctx, a.pool, ProjectionNames())
			}},
		metrics.Pools{"api": a.pool, "projector": a.projPool},
	)
	if err == nil {
		err = m.Register(a.logStatus.collectors()...)
	}
	if err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return m, nil
}

// RunLog runs the notifier, which tells readers of the log of new
// events, until ctx ends; the returned wait waits for its end. fail hears
// of it ending early. Commands that follow the log or build copies of
// projections need it.
func (a *App) RunLog(ctx context.Context, fail func(error)) (wait func()) {
	return a.runParts(ctx, false, fail)
}

// Project runs the projections without the API, until ctx ends, so API
// servers and projection workers scale apart. It ends early with an error
// when every projection stopped on a failing event.
func (a *App) Project(ctx context.Context) error {
	a.log.Info("arq projecting", "projections", names(a.ps), "version", Version())
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wait := a.runParts(ctx, true, func(err error) { cancel(err) })
	<-ctx.Done()
	cancel(nil)
	wait()
	var err error
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	a.stopped(err)
	return err
}
