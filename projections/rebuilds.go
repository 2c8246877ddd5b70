package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/eventstore"
)

// ErrUnknownProjection is returned for a projection name not registered.
var ErrUnknownProjection = errors.New("no such projection")

// RebuildJob is the state of an online rebuild run by Rebuilds.
type RebuildJob struct {
	Projection string `json:"projection"`
	// State is running, done or failed.
	State string `json:"state"`
	// Position is how far the copy has come, Target where it is heading
	// (both log positions).
	Position int64 `json:"position"`
	Target   int64 `json:"target"`
	// Checkpoint is the event the switched-in tables end at, once done.
	Checkpoint string     `json:"checkpoint,omitempty"`
	Error      string     `json:"error,omitempty"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// Rebuild job states.
const (
	JobRunning = "running"
	JobDone    = "done"
	JobFailed  = "failed"
)

// Rebuilds runs online rebuilds in the background for the admin API and
// remembers the last one of each projection in this process.
type Rebuilds struct {
	ctx      context.Context // the jobs' lifetime: the server's
	db       *pgxpool.Pool
	notifier *eventstore.Notifier
	ps       map[string]Projection
	opener   eventstore.Opener
	log      *slog.Logger

	mu   sync.Mutex
	jobs map[string]*RebuildJob
	wg   sync.WaitGroup
}

// NewRebuilds returns a runner of online rebuilds of ps, whose copies open
// the events they apply with opener (see Config.Opener); jobs stop when
// ctx ends.
func NewRebuilds(ctx context.Context, db *pgxpool.Pool, notifier *eventstore.Notifier, ps []Projection, opener eventstore.Opener, log *slog.Logger) *Rebuilds {
	m := make(map[string]Projection, len(ps))
	for _, p := range ps {
		m[p.Name()] = p
	}
	return &Rebuilds{ctx: ctx, db: db, notifier: notifier, ps: m, opener: opener, log: log, jobs: map[string]*RebuildJob{}}
}

// Start begins an online rebuild of the named projection and returns at
// once. It fails with ErrUnknownProjection, or ErrRebuildRunning when a
// rebuild or verify of it runs here or in another process.
func (r *Rebuilds) Start(name string) (RebuildJob, error) {
	p, ok := r.ps[name]
	if !ok {
		return RebuildJob{}, fmt.Errorf("projection %q: %w", name, ErrUnknownProjection)
	}
	job := &RebuildJob{Projection: name, State: JobRunning, StartedAt: time.Now().UTC()}
	r.mu.Lock()
	prev, ok := r.jobs[name]
	if ok && prev.State == JobRunning {
		r.mu.Unlock()
		return RebuildJob{}, fmt.Errorf("projection %s: %w", name, ErrRebuildRunning)
	}
	r.jobs[name] = job // reserved while the copy is set up, outside the lock
	r.wg.Add(1)
	r.mu.Unlock()
	cp, err := NewCopy(r.ctx, r.db, r.notifier, p, OnlineOptions{
		Log:    r.log,
		Opener: r.opener,
		Progress: func(at, target int64) {
			r.mu.Lock()
			job.Position, job.Target = at, target
			r.mu.Unlock()
		},
	})
	if err != nil {
		r.mu.Lock()
		if prev != nil {
			r.jobs[name] = prev
		} else {
			delete(r.jobs, name)
		}
		r.mu.Unlock()
		r.wg.Done()
		return RebuildJob{}, err
	}
	go func() {
		defer r.wg.Done()
		at, err := cp.Replace(r.ctx)
		r.mu.Lock()
		defer r.mu.Unlock()
		now := time.Now().UTC()
		job.FinishedAt = &now
		if err != nil {
			job.State, job.Error = JobFailed, err.Error()
			r.log.Error("online rebuild failed", "projection", name, "err", err)
			return
		}
		job.State, job.Checkpoint, job.Position = JobDone, at.String(), at.Position
	}()
	r.mu.Lock()
	defer r.mu.Unlock()
	return *job, nil
}

// Job returns the last rebuild of the named projection started here.
func (r *Rebuilds) Job(name string) (RebuildJob, error) {
	if _, ok := r.ps[name]; !ok {
		return RebuildJob{}, fmt.Errorf("projection %q: %w", name, ErrUnknownProjection)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	j, ok := r.jobs[name]
	if !ok {
		return RebuildJob{}, fmt.Errorf("no rebuild of %s started in this process: %w", name, ErrUnknownProjection)
	}
	return *j, nil
}

// Wait waits for the jobs to end (they end with the context given to
// NewRebuilds).
func (r *Rebuilds) Wait() { r.wg.Wait() }
