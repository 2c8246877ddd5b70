package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/projections"
)

// scrapeTimeout bounds the Postgres reads of one scrape.
const scrapeTimeout = 2 * time.Second

// Projections is what the projection collector reads when scraped.
type Projections struct {
	// Batches are this process's projectors' batch figures, by
	// projection (none when the process runs no projectors).
	Batches func() map[string]projections.BatchStats
	// States reads every projection's state and checkpoint, whichever
	// process applies it.
	States func(ctx context.Context) ([]projections.Status, error)
	// Head reads the position of the log's last event.
	Head func(ctx context.Context) (eventstore.Cursor, error)
	Log  *slog.Logger
}

var (
	batchesDesc = prometheus.NewDesc("arq_projection_batches_total",
		"Batches of events this process's projector ran (a batch rolled back and read again counts each time).", []string{"projection"}, nil)
	eventsDesc = prometheus.NewDesc("arq_projection_events_total",
		"Events this process's projector applied (those of a batch rolled back count again when it is read again).", []string{"projection"}, nil)
	holdDesc = prometheus.NewDesc("arq_projection_batch_seconds_total",
		"Time this process's projector held its batch transactions open (each holds back every reader of the log).", []string{"projection"}, nil)
	holdMaxDesc = prometheus.NewDesc("arq_projection_batch_seconds_max",
		"Longest batch transaction of this process's projector.", []string{"projection"}, nil)
	positionDesc = prometheus.NewDesc("arq_projection_position",
		"Log position of the last event the projection applied (in any process); arq_log_head_position minus this is how far behind it is.", []string{"projection"}, nil)
	stoppedDesc = prometheus.NewDesc("arq_projection_stopped",
		"1 when the projection stopped on a failing event (see arq projections status), else 0.", []string{"projection"}, nil)
	headDesc = prometheus.NewDesc("arq_log_head_position",
		"Log position of the last event readers can see.", nil, nil)
)

// Describe sends the descriptions of the projection metrics.
func (p Projections) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{batchesDesc, eventsDesc, holdDesc, holdMaxDesc, positionDesc, stoppedDesc, headDesc} {
		ch <- d
	}
}

// Collect reads the batch figures in memory and the states and the log's
// head from Postgres; when Postgres does not answer, the latter are left
// out of the scrape and the failure is logged.
func (p Projections) Collect(ch chan<- prometheus.Metric) {
	for name, s := range p.Batches() {
		ch <- prometheus.MustNewConstMetric(batchesDesc, prometheus.CounterValue, float64(s.Batches), name)
		ch <- prometheus.MustNewConstMetric(eventsDesc, prometheus.CounterValue, float64(s.Events), name)
		ch <- prometheus.MustNewConstMetric(holdDesc, prometheus.CounterValue, s.Total.Seconds(), name)
		ch <- prometheus.MustNewConstMetric(holdMaxDesc, prometheus.GaugeValue, s.Max.Seconds(), name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	states, err := p.States(ctx)
	if err != nil {
		p.Log.Warn("metrics: read projection states", "err", err)
		return
	}
	for _, s := range states {
		stopped := 0.0
		if s.State == projections.StateStopped {
			stopped = 1
		}
		ch <- prometheus.MustNewConstMetric(positionDesc, prometheus.GaugeValue, float64(s.Checkpoint.Position), s.Name)
		ch <- prometheus.MustNewConstMetric(stoppedDesc, prometheus.GaugeValue, stopped, s.Name)
	}
	head, err := p.Head(ctx)
	if err != nil {
		p.Log.Warn("metrics: read head of log", "err", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(headDesc, prometheus.GaugeValue, float64(head.Position))
}

// Pools reports pgx pools' connections, each under the label pool=its
// name.
type Pools map[string]*pgxpool.Pool

var (
	poolConnsDesc = prometheus.NewDesc("arq_db_pool_connections",
		"Connections of the Postgres pool, by state.", []string{"pool", "state"}, nil)
	poolMaxDesc = prometheus.NewDesc("arq_db_pool_max_connections",
		"Most connections the Postgres pool opens.", []string{"pool"}, nil)
	poolAcquiresDesc = prometheus.NewDesc("arq_db_pool_acquires_total",
		"Connections taken from the Postgres pool.", []string{"pool"}, nil)
	poolEmptyDesc = prometheus.NewDesc("arq_db_pool_empty_acquires_total",
		"Takes that found no idle connection and waited for one.", []string{"pool"}, nil)
	poolWaitDesc = prometheus.NewDesc("arq_db_pool_acquire_seconds_total",
		"Time spent taking connections from the Postgres pool.", []string{"pool"}, nil)
)

// Describe sends the descriptions of the pool metrics.
func (p Pools) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolConnsDesc, poolMaxDesc, poolAcquiresDesc, poolEmptyDesc, poolWaitDesc} {
		ch <- d
	}
}

// Collect reads the pools' figures.
func (p Pools) Collect(ch chan<- prometheus.Metric) {
	for name, pool := range p {
		s := pool.Stat()
		ch <- prometheus.MustNewConstMetric(poolConnsDesc, prometheus.GaugeValue, float64(s.AcquiredConns()), name, "acquired")
		ch <- prometheus.MustNewConstMetric(poolConnsDesc, prometheus.GaugeValue, float64(s.IdleConns()), name, "idle")
		ch <- prometheus.MustNewConstMetric(poolConnsDesc, prometheus.GaugeValue, float64(s.ConstructingConns()), name, "constructing")
		ch <- prometheus.MustNewConstMetric(poolMaxDesc, prometheus.GaugeValue, float64(s.MaxConns()), name)
		ch <- prometheus.MustNewConstMetric(poolAcquiresDesc, prometheus.CounterValue, float64(s.AcquireCount()), name)
		ch <- prometheus.MustNewConstMetric(poolEmptyDesc, prometheus.CounterValue, float64(s.EmptyAcquireCount()), name)
		ch <- prometheus.MustNewConstMetric(poolWaitDesc, prometheus.CounterValue, s.AcquireDuration().Seconds(), name)
	}
}
