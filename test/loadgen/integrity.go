package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/store"
)

// sealing runs the integrity sealer against a scenario's database while the load runs, as
// the maintain function does (every -seal-interval), and afterwards verifies the database.
type sealing struct {
	cancel context.CancelFunc
	done   chan struct{}
	st     *store.Store
	closer func()
	sealer *ledger.Sealer
	keys   []integrity.PublicKey

	mu   sync.Mutex
	lags []time.Duration
	err  error
}

// sealResult is what a sealed scenario reports besides its load figures.
type sealResult struct {
	lags     []time.Duration
	verified int64
	took     time.Duration
	ok       bool
	problems int
}

func startSealing(ctx context.Context, databaseURL string, interval time.Duration) (*sealing, error) {
	pool, err := store.Open(ctx, databaseURL, store.PoolOptions{MaxConns: 2})
	if err != nil {
		return nil, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		pool.Close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	s := &sealing{cancel: cancel, done: make(chan struct{}), st: store.New(pool), closer: pool.Close, keys: []integrity.PublicKey{pub}}
	s.sealer = &ledger.Sealer{Store: s.st, Signer: integrity.NewSigner(priv), Observe: func(d time.Duration) {
		s.mu.Lock()
		s.lags = append(s.lags, d)
		s.mu.Unlock()
	}}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if _, err := s.sealer.SealAll(sctx); err != nil && sctx.Err() == nil {
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
			}
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s, nil
}

// finish stops the loop, seals what is left, and verifies the whole database against the log.
func (s *sealing) finish(ctx context.Context) (sealResult, error) {
	s.cancel()
	<-s.done
	defer s.closer()
	if s.err != nil {
		return sealResult{}, fmt.Errorf("sealer: %w", s.err)
	}
	if _, err := s.sealer.SealAll(ctx); err != nil {
		return sealResult{}, fmt.Errorf("final seal: %w", err)
	}
	start := time.Now()
	rep, err := ledger.Verify(ctx, s.st, ledger.VerifyOptions{Keys: s.keys})
	if err != nil {
		return sealResult{}, fmt.Errorf("verify: %w", err)
	}
	for i, p := range rep.Problems {
		if i == 5 {
			break
		}
		logf("verify: %s: %s", p.Kind, p.Detail)
	}
	return sealResult{lags: s.lags, verified: rep.Events, took: time.Since(start), ok: rep.OK, problems: rep.ProblemCount}, nil
}
