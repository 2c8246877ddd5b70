package projections

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/eventstore"
)

// Config tunes the engine; zero values take the defaults.
type Config struct {
	// BatchSize is how many events one subscriber transaction applies in
	// fast mode. Larger batches amortise the checkpoint write but hold the
	// transaction, and with it pg_snapshot_xmin for every reader of the
	// log, for longer.
	BatchSize int
	// CarefulBatchSize is the batch size while replaying a failed batch
	// event by event. Keep it under 64: each event's savepoint is a
	// subtransaction, and past 64 in one transaction every session's
	// snapshots slow down.
	CarefulBatchSize int
	// Attempts is how often an event is tried before its projection stops.
	Attempts int
	// RetryDelay is the pause before the second attempt; it doubles after.
	RetryDelay time.Duration
	// SlowBatch is the transaction hold time past which a batch is logged.
	SlowBatch time.Duration
	// IdlePoll bounds how long an idle projector waits for a notification
	// before it looks at the log anyway.
	IdlePoll time.Duration
	// ScanWindow is how many events of the log one batch of a Selective
	// projection looks at, at most, for the BatchSize events it applies.
	// Larger windows cost fewer batches where wanted events are rare and
	// hold the batch's transaction longer.
	ScanWindow int
	// Until, when set, returns the last event the projections may apply
	// (asked before every poll); a projector that reaches it idles. Online
	// rebuilds build a copy that follows the live projection's checkpoint
	// with it.
	Until func() eventstore.Cursor
	// Opener opens the events the projections apply, putting back the
	// personal fields the log keeps sealed (see eventstore.Sealer), a
	// batch in one call; nil hands them over as the log stores them. A
	// passing failure of it (the key store did not answer) is tried
	// again, as a dropped connection is (see transient).
	Opener eventstore.Opener
}

func (c *Config) defaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 200
	}
	if c.ScanWindow < c.BatchSize {
		c.ScanWindow = max(25*c.BatchSize, 5000)
	}
	if c.CarefulBatchSize <= 0 || c.CarefulBatchSize > 64 {
		c.CarefulBatchSize = 50
	}
	if c.Attempts <= 0 {
		c.Attempts = 3
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = 20 * time.Millisecond
	}
	if c.SlowBatch <= 0 {
		c.SlowBatch = 500 * time.Millisecond
	}
	if c.IdlePoll <= 0 {
		c.IdlePoll = time.Second
	}
}

var validName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// Engine runs projections as Watermill handlers, one consumer group each.
type Engine struct {
	pool        *pgxpool.Pool
	notifier    *eventstore.Notifier
	projections []Projection
	cfg         Config
	log         *slog.Logger

	committed *Signal

	mu    sync.Mutex
	stats map[string]*BatchStats
}

// NewEngine returns an engine for projections over pool's database.
//
// The pool's connections may run with synchronous_commit off: a
// projection's writes and its checkpoint commit together, so a commit lost
// in a crash loses both, and the events are applied again from the log.
func NewEngine(pool *pgxpool.Pool, notifier *eventstore.Notifier, ps []Projection, cfg Config, log *slog.Logger) (*Engine, error) {
	cfg.defaults()
	seen := map[string]bool{}
	for _, p := range ps {
		if !validName.MatchString(p.Name()) {
			return nil, fmt.Errorf("projection name %q: want lower case letters, digits and underscores", p.Name())
		}
		if seen[p.Name()] {
			return nil, fmt.Errorf("projection %q registered twice", p.Name())
		}
		seen[p.Name()] = true
	}
	stats := map[string]*BatchStats{}
	for _, p := range ps {
		stats[p.Name()] = &BatchStats{}
	}
	return &Engine{pool: pool, notifier: notifier, projections: ps, cfg: cfg, log: log, stats: stats, committed: NewSignal()}, nil
}

// Committed fires after every batch a projection of this engine commits;
// a Waiter in the same process sleeps on it.
func (e *Engine) Committed() *Signal { return e.committed }

// BatchStats measures how long a projection's subscriber transactions hold
// their snapshot, which delays every reader of the log.
type BatchStats struct {
	Batches int64
	Events  int64
	Last    time.Duration
	Max     time.Duration
	Total   time.Duration
}

// Stats returns a copy of each projection's batch statistics.
func (e *Engine) Stats() map[string]BatchStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]BatchStats, len(e.stats))
	for k, v := range e.stats {
		out[k] = *v
	}
	return out
}

// Run applies events to every projection until ctx ends. A projection that
// stops on a failing event stops alone; Run returns when ctx ends or when
// every projection has stopped.
//
// Each projection's subscriber hands its messages, one at a time, to a
// loop of the projection's own, which applies and acks each before the
// subscriber sends the next. (Watermill's router would run every message
// in a goroutine of its own, whose stack grew anew through each event's
// JSON decoding: a tenth of a rebuild's CPU.)
func (e *Engine) Run(ctx context.Context) error {
	wlog := quietLogger{LoggerAdapter: watermill.NewSlogLoggerWithLevelMapping(e.log.With("component", "projections"), map[slog.Level]slog.Level{
		slog.LevelInfo: slog.LevelDebug, // Watermill's lifecycle chatter
	})}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var loops sync.WaitGroup
	var subs []*wsql.Subscriber
	stop := func() {
		cancel()
		loops.Wait()
		for _, sub := range subs {
			_ = sub.Close() // ends at once: its context is cancelled
		}
	}

	for _, p := range e.projections {
		r := &runner{engine: e, p: p, log: e.log.With("projection", p.Name()), types: wakeTypes(p)}
		if opens(p) {
			r.read.opener, r.read.types = e.cfg.Opener, eventTypes(p)
		}
		sub, err := wsql.NewSubscriber(txBeginner{Beginner: wsql.BeginnerFromPgx(e.pool), pool: e.pool, r: r}, wsql.SubscriberConfig{
			ConsumerGroup: p.Name(),
			SchemaAdapter: logSource{batchSize: e.cfg.BatchSize, carefulBatchSize: e.cfg.CarefulBatchSize, careful: &r.careful, until: e.cfg.Until,
				types: eventTypes(p), window: e.cfg.ScanWindow, scanned: &r.scanned, read: &r.read},
			OffsetsAdapter: offsetsAdapter,
			BackoffManager: newWaker(runCtx, e.pool, e.notifier, e.cfg, r.log, p.Name(), r.types, func() bool {
				return r.careful.Load() || r.inBatch.Load() >= int64(e.cfg.BatchSize) || r.scanned.Load() >= int64(e.cfg.ScanWindow)
			}, func() bool { return r.wanted.Load() > 0 }),
			ResendInterval: e.cfg.RetryDelay,
			// No ack deadline: a deadline would let the subscriber take the
			// transaction back while a slow handler still uses it.
			AckDeadline: new(time.Duration),
		}, wlog)
		if err != nil {
			stop()
			return fmt.Errorf("projection %s: create subscriber: %w", p.Name(), err)
		}
		r.sub = sub
		subs = append(subs, sub)
		if err := setRunning(ctx, e.pool, p.Name()); err != nil {
			stop()
			if ctx.Err() != nil {
				return nil // stopped while starting: a stop like any other
			}
			return err
		}
		msgs, err := sub.Subscribe(runCtx, topic)
		if err != nil {
			stop()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("projection %s: subscribe: %w", p.Name(), err)
		}
		loops.Add(1)
		go func() {
			defer loops.Done()
			r.consume(msgs)
		}()
	}

	// The loops end when their subscribers close: on ctx's end, or each
	// on its projection's failing event.
	stopped := make(chan struct{})
	go func() {
		loops.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
	}
	stop()
	return nil
}

func (e *Engine) recordBatch(name string, held time.Duration, events int64) {
	e.mu.Lock()
	s := e.stats[name]
	s.Batches++
	s.Events += events
	s.Last = held
	s.Total += held
	if held > s.Max {
		s.Max = held
	}
	e.mu.Unlock()
}

// quietLogger drops Watermill's per-message trace and debug lines before
// their fields are built: they cost more than applying an event. With,
// which Watermill calls for every message, only remembers its fields; they
// are added to a line when one is written (rarely: errors and lifecycle).
type quietLogger struct {
	watermill.LoggerAdapter
	fields *fieldChain
}

// fieldChain is the fields of With calls, newest first.
type fieldChain struct {
	fields watermill.LogFields
	next   *fieldChain
}

func (c *fieldChain) with(f watermill.LogFields) watermill.LogFields {
	var chain []watermill.LogFields
	for ; c != nil; c = c.next {
		chain = append(chain, c.fields)
	}
	out := watermill.LogFields{}
	for i := len(chain) - 1; i >= 0; i-- { // oldest first: newer fields win
		for k, v := range chain[i] {
			out[k] = v
		}
	}
	for k, v := range f {
		out[k] = v
	}
	return out
}

func (quietLogger) Debug(string, watermill.LogFields) {}
func (quietLogger) Trace(string, watermill.LogFields) {}

func (l quietLogger) Error(msg string, err error, f watermill.LogFields) {
	l.LoggerAdapter.Error(msg, err, l.fields.with(f))
}

func (l quietLogger) Info(msg string, f watermill.LogFields) {
	l.LoggerAdapter.Info(msg, l.fields.with(f))
}

func (l quietLogger) With(f watermill.LogFields) watermill.LoggerAdapter {
	return quietLogger{LoggerAdapter: l.LoggerAdapter, fields: &fieldChain{fields: f, next: l.fields}}
}
