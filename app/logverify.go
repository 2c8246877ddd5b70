package app

import (
	"context"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arq-memory/arq/api"
	"github.com/arq-memory/arq/ledger"
)

// logStatus is what the server's verifier last found of the log: the
// metric arq_log_verified and /readyz read it.
type logStatus struct {
	mu      sync.Mutex
	checked bool
	last    ledger.Result
}

func (s *logStatus) set(r ledger.Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checked, s.last = true, r
}

// LogVerified reports the last check of the log against its signed
// checkpoint (see api.LogVerification).
func (s *logStatus) LogVerified() api.LogCheck {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := api.LogCheck{Checked: s.checked, OK: !s.checked || s.last.OK, Size: s.last.Size}
	if s.checked && !s.last.OK && s.last.First != nil {
		c.Problem = s.last.First.Problem
		c.EventID = s.last.First.EventID
	}
	return c
}

// collectors are the verifier's metrics: arq_log_verified is 0 once a
// check found the log differing from its signed checkpoint (1 before any
// check), arq_log_verified_size the size of the checkpoint last checked.
func (s *logStatus) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "arq_log_verified",
			Help: "0 when the server's last check found the log differing from its latest signed checkpoint, else 1."},
			func() float64 {
				if s.LogVerified().OK {
					return 1
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "arq_log_verified_size",
			Help: "The size (events) of the signed checkpoint the server's last check of the log was against."},
			func() float64 { return float64(s.LogVerified().Size) }),
	}
}

// startLogVerifier checks the log against its signed checkpoints in the
// background until ctx ends: the events signed since the last check
// every ARQ_LOG_VERIFY_EVERY, the whole log at start and every
// ARQ_LOG_VERIFY_FULL_EVERY. It needs the verifier key of the configured
// signing key; without one it does not run. wait waits for its end.
func (a *App) startLogVerifier(ctx context.Context) (wait func(), err error) {
	skey, err := LogSigningKey(a.cfg)
	if err != nil || skey == "" {
		return func() {}, err
	}
	vkey, err := ledger.VerifierKey(skey)
	if err != nil {
		return nil, &SettingError{msg: "ARQ_LOG_SIGNING_KEY: " + err.Error()}
	}
	v := ledger.NewVerifier(a.tree, vkey, a.log, func(r ledger.Result) {
		was := a.logStatus.LogVerified()
		a.logStatus.set(r)
		if !r.OK {
			a.log.Error("the log differs from its signed checkpoint: it was changed outside ARQ", "checkpoint_size", r.Size, "first", fmt.Sprint(r.First))
		} else if !was.OK {
			a.log.Info("the log holds what its signed checkpoint says again", "checkpoint_size", r.Size)
		}
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		v.Run(ctx, a.cfg.LogVerifyEvery, a.cfg.LogVerifyFullEvery)
	}()
	return func() { <-done }, nil
}
