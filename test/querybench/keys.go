package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/jackc/pgx/v5/pgxpool"
)

// spec is one query of a scenario, told the same way to the HTTP API (values) and to the
// store (params), so both run the same SQL.
type spec struct {
	kind          string // what kind of key, for the breakdown of a scenario
	correlationID string
	typePrefix    string // "gateway." for event_type=gateway.*
	actorID       string
	outcome       string
	namespace     string
	data          string // a JSON object for data (containment)
	dataPath      string
	since         time.Duration // back from now; 0: no bound
	limit         int           // 0: the default (100); an export has none
	scope         []string      // the reader's namespaces (-scope); nil: cluster-wide
}

// values is the spec as query parameters.
func (s spec) values() url.Values {
	v := url.Values{}
	set := func(name, val string) {
		if val != "" {
			v.Set(name, val)
		}
	}
	set("correlation_id", s.correlationID)
	if s.typePrefix != "" {
		v.Set("event_type", s.typePrefix+"*")
	}
	set("actor_id", s.actorID)
	set("event_outcome", s.outcome)
	set("namespace", s.namespace)
	set("data", s.data)
	set("data_path", s.dataPath)
	if s.since > 0 {
		if s.since%(24*time.Hour) == 0 {
			v.Set("since", strconv.Itoa(int(s.since/(24*time.Hour)))+"d")
		} else {
			v.Set("since", s.since.String())
		}
	}
	if s.limit > 0 {
		v.Set("limit", strconv.Itoa(s.limit))
	}
	return v
}

// params is the spec as the query function would hand it to the store at now: the same
// defaults (limit 100, ascending for a timeline, else descending) and the same canonical
// form of data.
func (s spec) params(now time.Time) store.QueryParams {
	var p store.QueryParams
	one := func(v string) []string {
		if v == "" {
			return nil
		}
		return []string{v}
	}
	p.CorrelationIDs = one(s.correlationID)
	p.EventTypePrefixes = one(s.typePrefix)
	p.ActorIDs = one(s.actorID)
	p.EventOutcomes = one(s.outcome)
	p.Namespaces = one(s.namespace)
	if s.data != "" {
		canon, err := audit.CanonicalJSON([]byte(s.data))
		if err != nil {
			panic(fmt.Sprintf("key %q: %v", s.data, err)) // keys are made here, valid
		}
		p.Data = json.RawMessage(canon)
	}
	p.DataPath = s.dataPath
	if s.since > 0 {
		t := now.Add(-s.since)
		p.Since = &t
	}
	p.Order = store.Descending
	if s.correlationID != "" {
		p.Order = store.Ascending
	}
	p.Limit = cmpOr(s.limit, 100)
	if s.scope != nil {
		p.Scoped, p.InNamespaces = true, s.scope
	}
	return p
}

func (s spec) String() string {
	q, _ := url.QueryUnescape(s.values().Encode())
	return q
}

// parseSpec reads the filter of -export-limit: a query string of the parameters spec knows.
func parseSpec(q string) (spec, error) {
	v, err := url.ParseQuery(q)
	if err != nil {
		return spec{}, err
	}
	var s spec
	for name, vals := range v {
		if len(vals) != 1 {
			return spec{}, fmt.Errorf("%s may be given once", name)
		}
		val := vals[0]
		switch name {
		case "correlation_id":
			s.correlationID = val
		case "event_type":
			p, ok := strings.CutSuffix(val, "*")
			if !ok {
				return spec{}, fmt.Errorf("event_type %q: only a prefix ending in * is supported here", val)
			}
			s.typePrefix = p
		case "actor_id":
			s.actorID = val
		case "event_outcome":
			s.outcome = val
		case "namespace":
			s.namespace = val
		case "since":
			if d, ok := strings.CutSuffix(val, "d"); ok {
				n, err := strconv.Atoi(d)
				if err != nil || n < 0 {
					return spec{}, fmt.Errorf("since %q is not a duration such as 30d or 12h", val)
				}
				s.since = time.Duration(n) * 24 * time.Hour
			} else if s.since, err = time.ParseDuration(val); err != nil || s.since < 0 {
				return spec{}, fmt.Errorf("since %q is not a duration such as 30d or 12h", val)
			}
		default:
			return spec{}, fmt.Errorf("%s is not supported here; use correlation_id, event_type, actor_id, event_outcome, namespace or since", name)
		}
	}
	return s, nil
}

// sample is what key sampling read of one stored event.
type sample struct {
	correlationID, eventType, actorID, outcome, namespace string
	provider, workflowID, executionID, service, status    string
	timestamp                                             time.Time
}

// sampleEvents is key sampling, not a query under test: it reads about want random events
// with a plain SELECT over a block sample (TABLESAMPLE SYSTEM, repeatable with seed), so the
// keys are values that exist, spread over the whole table.
func sampleEvents(ctx context.Context, pool *pgxpool.Pool, want int, seed int64) ([]sample, error) {
	var estimate float64
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(c.reltuples) FILTER (WHERE c.reltuples > 0), 0)
		FROM pg_partition_tree('audit_events') t JOIN pg_class c ON c.oid = t.relid WHERE t.isleaf`).Scan(&estimate); err != nil {
		return nil, fmt.Errorf("key sampling: %w", err)
	}
	pct := 100.0
	if estimate > 0 {
		pct = min(100, 100*float64(want)/estimate)
	}
	rows, err := pool.Query(ctx, `SELECT correlation_id, event_type, actor_id, event_outcome, coalesce(namespace, ''),
			coalesce(event_data->'payload'->>'provider', ''), coalesce(event_data->'payload'->>'workflow_id', ''),
			coalesce(event_data->'payload'->>'execution_id', ''), coalesce(event_data->>'service', ''),
			coalesce(event_data->>'status', ''), event_timestamp
		FROM audit_events TABLESAMPLE SYSTEM ($1) REPEATABLE ($2)`, pct, seed)
	if err != nil {
		return nil, fmt.Errorf("key sampling: %w", err)
	}
	defer rows.Close()
	var out []sample
	for rows.Next() {
		var s sample
		if err := rows.Scan(&s.correlationID, &s.eventType, &s.actorID, &s.outcome, &s.namespace, &s.provider,
			&s.workflowID, &s.executionID, &s.service, &s.status, &s.timestamp); err != nil {
			return nil, fmt.Errorf("key sampling: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("key sampling: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("key sampling: audit_events is empty; seed it first (go run ./test/seed)")
	}
	return out, nil
}

// keyMaker draws the keys of every scenario from the sampled events.
type keyMaker struct {
	rng     *rand.Rand
	samples []sample
	now     time.Time
}

func (m *keyMaker) pick() *sample { return &m.samples[m.rng.IntN(len(m.samples))] }

// recent picks a sampled event of the last d, or any when none is that recent.
func (m *keyMaker) recent(d time.Duration) *sample {
	for range 1000 {
		if s := m.pick(); s.timestamp.After(m.now.Add(-d)) {
			return s
		}
	}
	return m.pick()
}

// timeline: (a) a random correlation's events, oldest first.
func (m *keyMaker) timeline(n int) []spec {
	out := make([]spec, n)
	for i := range out {
		out[i] = spec{kind: "correlation", correlationID: m.pick().correlationID}
	}
	return out
}

// typePrefix: (b) event_type=<service>.* or <service>.<object>.* of the last 24 h, limit 100;
// the type comes from a recent event, so each prefix has matches.
func (m *keyMaker) typePrefix(n int) []spec {
	out := make([]spec, n)
	for i := range out {
		parts := strings.Split(m.recent(24*time.Hour).eventType, ".")
		prefix, kind := parts[0]+".", "service.*"
		if i%2 == 1 && len(parts) > 2 {
			prefix, kind = parts[0]+"."+parts[1]+".", "service.object.*"
		}
		out[i] = spec{kind: kind, typePrefix: prefix, since: 24 * time.Hour}
	}
	return out
}

// actorOutcome: (c) actor_id and event_outcome of the last 7 days, each pair that occurs
// equally likely (so failure and pending, the rarer ones, are well represented).
func (m *keyMaker) actorOutcome(n int) []spec {
	seen := map[[2]string]bool{}
	for i := range m.samples {
		s := &m.samples[i]
		if s.timestamp.After(m.now.Add(-7 * 24 * time.Hour)) {
			seen[[2]string{s.actorID, s.outcome}] = true
		}
	}
	pairs := slices.SortedFunc(func(yield func([2]string) bool) {
		for p := range seen {
			if !yield(p) {
				return
			}
		}
	}, func(a, b [2]string) int { return strings.Compare(a[0]+" "+a[1], b[0]+" "+b[1]) })
	if len(pairs) == 0 {
		s := m.pick()
		pairs = [][2]string{{s.actorID, s.outcome}}
	}
	out := make([]spec, n)
	for i := range out {
		p := pairs[m.rng.IntN(len(pairs))]
		out[i] = spec{kind: p[1], actorID: p[0], outcome: p[1], since: 7 * 24 * time.Hour}
	}
	return out
}

// containment: (d) data={...}, limit 100, over all time, in four kinds from common to rare:
// a provider (a fifth of the events or more), an envelope service and status, a workflow of
// the catalog, and one correlation's execution_id (a handful of events).
func (m *keyMaker) containment(n int) []spec {
	out := make([]spec, n)
	for i := range out {
		s := m.pick()
		var kind, data string
		switch i % 4 {
		case 0:
			kind, data = "provider", fmt.Sprintf(`{"payload":{"provider":%q}}`, s.provider)
		case 1:
			kind, data = "service+status", fmt.Sprintf(`{"service":%q,"status":%q}`, s.service, s.status)
		case 2:
			kind, data = "workflow_id", fmt.Sprintf(`{"payload":{"workflow_id":%q}}`, s.workflowID)
		default:
			kind, data = "execution_id", fmt.Sprintf(`{"payload":{"execution_id":%q}}`, s.executionID)
		}
		out[i] = spec{kind: kind, data: data}
	}
	return out
}

// dataPath: (e) data_path=..., limit 100, over all time: range predicates that no index can
// answer (risk_score above a threshold, retries at least some), one that combines both
// (rarer), and an equality (which GIN jsonb_path_ops can answer).
func (m *keyMaker) dataPath(n int) []spec {
	out := make([]spec, n)
	for i := range out {
		var kind, path string
		switch i % 4 {
		case 0:
			kind, path = "risk_score >", fmt.Sprintf("$.payload.risk_score > %d", 90+m.rng.IntN(10))
		case 1:
			kind, path = "retries >=", fmt.Sprintf("$.payload.retries >= %d", 3+m.rng.IntN(3))
		case 2:
			kind, path = "risk && retries", fmt.Sprintf("$.payload.risk_score > %d && $.payload.retries >= %d", 90+m.rng.IntN(10), 3+m.rng.IntN(3))
		default:
			kind, path = "workflow_id ==", fmt.Sprintf("$.payload.workflow_id == %q", m.pick().workflowID)
		}
		out[i] = spec{kind: kind, dataPath: path}
	}
	return out
}

// pagingFilters: (f) filters with many matches over all time, walked 100 at a time: a
// service's event types, an actor, a namespace, successes, or nothing.
func (m *keyMaker) pagingFilters(n int) []spec {
	out := make([]spec, n)
	for i := range out {
		s := m.pick()
		switch i % 5 {
		case 0:
			out[i] = spec{kind: "service.*", typePrefix: strings.SplitN(s.eventType, ".", 2)[0] + "."}
		case 1:
			out[i] = spec{kind: "actor_id", actorID: s.actorID}
		case 2:
			out[i] = spec{kind: "namespace", namespace: s.namespace}
		case 3:
			out[i] = spec{kind: "outcome=success", outcome: "success"}
		default:
			out[i] = spec{kind: "no filter"}
		}
	}
	return out
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}
