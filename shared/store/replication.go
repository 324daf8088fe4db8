package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// LSN is a position in PostgreSQL's write-ahead log.
type LSN uint64

// ParseLSN reads an LSN as PostgreSQL writes it ("16/B374D848").
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q is not a WAL position", s)
	}
	return LSN(h<<32 | l), nil
}

func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint32(l)) }

// Replicas names the standbys whose flush a seal waits for.
type Replicas int

const (
	// ReplicasSync waits for the synchronous standbys, when synchronous replication is
	// configured (synchronous_standby_names): what a failover to one of them keeps.
	ReplicasSync Replicas = iota
	// ReplicasAll waits for every standby streaming from the primary, asynchronous ones too.
	ReplicasAll
	// ReplicasNone waits for no standby.
	ReplicasNone
)

// ParseReplicas reads INTEGRITY_SEAL_REPLICAS: sync, all or none.
func ParseReplicas(s string) (Replicas, error) {
	switch s {
	case "sync", "":
		return ReplicasSync, nil
	case "all":
		return ReplicasAll, nil
	case "none":
		return ReplicasNone, nil
	}
	return 0, fmt.Errorf("%q is not one of sync, all, none", s)
}

func (r Replicas) String() string { return [...]string{"sync", "all", "none"}[r] }

// ErrStandbysHidden means pg_stat_replication does not show this role where its standbys are.
var ErrStandbysHidden = errors.New("pg_stat_replication hides the standbys' positions from this role: grant it pg_read_all_stats (or pg_monitor)")

// StandbyFlush says how far the standbys of set have flushed the WAL: wait is false when there
// is no such standby to wait for (ReplicasNone; ReplicasSync without synchronous replication;
// ReplicasAll with no standby streaming). With wait and no such standby connected (synchronous
// replication configured, its standby gone) flushed is 0: nothing is known to be safe.
func (s *Store) StandbyFlush(ctx context.Context, set Replicas) (flushed LSN, wait bool, err error) {
	return standbyFlush(ctx, s.db, set)
}

func standbyFlush(ctx context.Context, db DBTX, set Replicas) (flushed LSN, wait bool, err error) {
	if set == ReplicasNone {
		return 0, false, nil
	}
	var (
		syncConfigured      bool
		hidden, conn, nsync int
		minConn, minSync    *string
	)
	// A WAL sender of a base backup (state 'backup') or still starting is no standby yet.
	err = db.QueryRow(ctx, `
SELECT current_setting('synchronous_standby_names') <> '',
       count(*) FILTER (WHERE state IS NULL),
       count(*) FILTER (WHERE state IN ('streaming', 'catchup')),
       min(flush_lsn) FILTER (WHERE state IN ('streaming', 'catchup'))::text,
       count(*) FILTER (WHERE sync_state IN ('sync', 'quorum')),
       min(flush_lsn) FILTER (WHERE sync_state IN ('sync', 'quorum'))::text
FROM pg_stat_replication`).Scan(&syncConfigured, &hidden, &conn, &minConn, &nsync, &minSync)
	if err != nil {
		return 0, false, fmt.Errorf("standbys: %w", interpretError(err))
	}
	var lsn *string
	switch {
	case set == ReplicasSync && !syncConfigured:
		return 0, false, nil
	case hidden > 0:
		return 0, false, ErrStandbysHidden
	case set == ReplicasSync:
		// For ANY n (quorum) the least of them is more than needed, never less.
		lsn = minSync
	case conn == 0:
		return 0, false, nil
	default:
		lsn = minConn
	}
	if lsn == nil {
		return 0, true, nil
	}
	flushed, err = ParseLSN(*lsn)
	return flushed, true, err
}

// awaitStandbys waits, polling through db, until the standbys of set have flushed the WAL up
// to pos or wait has passed, and says whether they did (also when there is none to wait for).
func awaitStandbys(ctx context.Context, db DBTX, set Replicas, pos LSN, wait time.Duration) (bool, error) {
	deadline := time.Now().Add(wait)
	for pause := 2 * time.Millisecond; ; pause = min(2*pause, 100*time.Millisecond) {
		flushed, must, err := standbyFlush(ctx, db, set)
		if err != nil || !must || flushed >= pos {
			return err == nil, err
		}
		if time.Now().Add(pause).After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, interpretError(ctx.Err())
		case <-time.After(pause):
		}
	}
}

// AwaitStandbys waits up to wait for the standbys of set to flush the WAL as far as the
// primary has written it now, and says whether they did: a checkpoint is copied outside the
// database only once a failover cannot take its seal away.
func (s *Store) AwaitStandbys(ctx context.Context, set Replicas, wait time.Duration) (bool, error) {
	if set == ReplicasNone {
		return true, nil
	}
	var pos string
	if err := s.db.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&pos); err != nil {
		return false, fmt.Errorf("WAL position: %w", interpretError(err))
	}
	lsn, err := ParseLSN(pos)
	if err != nil {
		return false, err
	}
	return awaitStandbys(ctx, s.db, set, lsn, wait)
}

// WALPosition is how far the primary has written the WAL: every commit acknowledged before the
// call lies below it, so a standby that has replayed this far holds all of them.
func (s *Store) WALPosition(ctx context.Context) (LSN, error) {
	var pos string
	if err := s.db.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&pos); err != nil {
		return 0, fmt.Errorf("WAL position: %w", interpretError(err))
	}
	return ParseLSN(pos)
}

// Replay is how far a standby has replayed its primary's WAL.
type Replay struct {
	// Standby is false for a server that is not in recovery (a primary, or a promoted
	// standby): it has nothing to replay.
	Standby bool
	// Replayed is the WAL position replayed so far.
	Replayed LSN
	// SinceCommit is how long ago, by the standby's clock, the last transaction it replayed
	// committed on the primary; Committed is false when it has replayed none since it started.
	SinceCommit time.Duration
	Committed   bool
}

// ReplayPosition says how far the server, a standby, has replayed the WAL.
func (s *Store) ReplayPosition(ctx context.Context) (Replay, error) {
	var (
		r        Replay
		replayed *string
		since    *float64
	)
	err := s.db.QueryRow(ctx, `SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,
       extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8`).Scan(&r.Standby, &replayed, &since)
	if err != nil {
		return Replay{}, fmt.Errorf("replay position: %w", interpretError(err))
	}
	if !r.Standby {
		return Replay{}, nil
	}
	if replayed == nil {
		return r, nil
	}
	if r.Replayed, err = ParseLSN(*replayed); err != nil {
		return Replay{}, err
	}
	if since != nil {
		r.SinceCommit, r.Committed = max(0, time.Duration(*since*float64(time.Second))), true
	}
	return r, nil
}
