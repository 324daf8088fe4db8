package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"time"
)

// scopePair is one key run twice directly: as a cluster-wide reader and as a reader of the
// -compare-scope namespaces.
type scopePair struct {
	key                 spec
	cluster, scoped     time.Duration
	clusterRows, inRows int
	scopedStmt          statement
}

// scopeResult is one scenario's comparison.
type scopeResult struct {
	id, name string
	pairs    []scopePair
	plan     string // EXPLAIN of the slowest scoped key
}

func clusterOf(p scopePair) time.Duration { return p.cluster }
func scopedOf(p scopePair) time.Duration  { return p.scoped }

// scopeScenario runs every key through the store as a cluster reader and as a reader of
// scope, alternating which goes first, so both meet the same cache and the same load: the
// ratio of the two is what the scope costs, in one run.
func (b *bench) scopeScenario(ctx context.Context, keys, warmup []spec, scope []string) ([]scopePair, error) {
	withScope := func(k spec) spec { k.scope = scope; return k }
	for _, k := range warmup {
		for _, kk := range []spec{k, withScope(k)} {
			if _, _, err := b.directList(ctx, kk.params(time.Now())); err != nil && !keyFailed(ctx, err) {
				return nil, fmt.Errorf("warm-up %s: %w", kk, err)
			}
		}
	}
	out := make([]scopePair, len(keys))
	for i, k := range keys {
		p := &out[i]
		p.key = k
		cluster := func() error {
			d, pg, err := b.directList(ctx, k.params(time.Now()))
			p.cluster, p.clusterRows = d, len(pg.Events)
			b.last.take()
			return err
		}
		scoped := func() error {
			d, pg, err := b.directList(ctx, withScope(k).params(time.Now()))
			p.scoped, p.inRows, p.scopedStmt = d, len(pg.Events), b.last.take()
			return err
		}
		first, second := cluster, scoped
		if i%2 == 1 {
			first, second = scoped, cluster
		}
		if err := first(); err != nil {
			return nil, err
		}
		if err := second(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// writeScope appends the comparison table: the goal is a scoped reader within 10% of a
// cluster reader at p50 and p99.
func (r *report) writeScope(w io.Writer) {
	if len(r.scopes) == 0 {
		return
	}
	fmt.Fprintf(w, "\n### Namespace-scoped reader (%v) vs cluster reader, directly, same keys in one run\n\n", r.cfg.compareScope)
	fmt.Fprintln(w, "| scenario | rows cluster / scoped (median) | cluster p50 | scoped p50 | ratio p50 | cluster p99 | scoped p99 | ratio p99 | goal | met? |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
	for _, s := range r.scopes {
		cr := make([]int, len(s.pairs))
		sr := make([]int, len(s.pairs))
		for i, p := range s.pairs {
			cr[i], sr[i] = p.clusterRows, p.inRows
		}
		c50, s50 := pct(s.pairs, 0.5, clusterOf), pct(s.pairs, 0.5, scopedOf)
		c99, s99 := pct(s.pairs, 0.99, clusterOf), pct(s.pairs, 0.99, scopedOf)
		r50, r99 := float64(s50)/float64(max(c50, 1)), float64(s99)/float64(max(c99, 1))
		fmt.Fprintf(w, "| %s | %d / %d | %s | %s | %.2f | %s | %s | %.2f | within 10%% | %s |\n", s.name, medianInt(cr), medianInt(sr),
			ms2(c50), ms2(s50), r50, ms2(c99), ms2(s99), r99, yes(r50 <= 1.10 && r99 <= 1.10))
	}
	for _, s := range r.scopes {
		if s.plan == "" {
			continue
		}
		slowest := slices.MaxFunc(s.pairs, func(x, y scopePair) int { return cmp.Compare(x.scoped, y.scoped) })
		fmt.Fprintf(w, "\n%s, slowest scoped key `%s` (%s):\n\n<details><summary>plan</summary>\n\n```\n%s```\n</details>\n", s.name, slowest.key, ms2(slowest.scoped), s.plan)
	}
}
