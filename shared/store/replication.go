package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
	if set == ReplicasNone {
		return 0, false, nil
	}
	var (
		syncConfigured      bool
		hidden, conn, nsync int
		minConn, minSync    *string
	)
	// A WAL sender of a base backup (state 'backup') or still starting is no standby yet.
	err = s.db.QueryRow(ctx, `
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

// WALPosition is the end of the WAL the primary has inserted: every transaction committed (or
// seen committed) before the call has its commit record below it.
func (s *Store) WALPosition(ctx context.Context) (LSN, error) {
	var pos string
	if err := s.db.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&pos); err != nil {
		return 0, fmt.Errorf("WAL position: %w", interpretError(err))
	}
	return ParseLSN(pos)
}

// SealSnapshot is where a seal round may end: a snapshot of the database, a WAL position that
// every transaction the snapshot sees committed below, and the log's last seal when it was
// taken. Once the standbys have flushed LSN, what the snapshot sees survives a failover.
type SealSnapshot struct {
	Snapshot string
	LSN      LSN
	// After is the seal_no of the log's last batch then (-1: none).
	After int64
}

// TakeSealSnapshot takes the snapshot a replication-aware seal runs to (SealParams.Round). The
// WAL position is read while the statement runs, after its snapshot was taken, so every commit
// the snapshot sees lies below it (asynchronous commits too: their records are inserted before
// they become visible).
func (s *Store) TakeSealSnapshot(ctx context.Context) (SealSnapshot, error) {
	var snap SealSnapshot
	var pos string
	err := s.db.QueryRow(ctx, `SELECT pg_current_snapshot()::text,
       coalesce((SELECT max(seal_no) FROM audit_log_batches), -1), pg_current_wal_insert_lsn()::text`).Scan(&snap.Snapshot, &snap.After, &pos)
	if err != nil {
		return snap, fmt.Errorf("seal snapshot: %w", interpretError(err))
	}
	snap.LSN, err = ParseLSN(pos)
	return snap, err
}
