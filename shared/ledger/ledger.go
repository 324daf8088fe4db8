// Package ledger keeps auditstore's tamper-evident log: it hashes events as they are written,
// seals them into the Merkle log with signed checkpoints, answers proofs and verifies the
// store against the log. The cryptography is shared/integrity's; the SQL is shared/store's.
package ledger

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/google/uuid"
)

// Recompute returns the event hash of an event's fields in the version of the encoding it
// was hashed with (audit.Event.ComputeHash; integrity owns the encodings); an event without
// a hash in the current one.
func Recompute(e audit.Event) (integrity.Hash, error) {
	return e.ComputeHash(cmp.Or(e.HashVersion, integrity.HashVersion))
}

// Hash sets e's event hash in DefaultHashVersion (audit.Event.SetHashVersion), as the write
// path does before storing it.
func Hash(e *audit.Event) error { return e.SetHashVersion(DefaultHashVersion) }

// Sealer appends written events to the log.
type Sealer struct {
	// Store is where the log lives.
	Store *store.Store
	// Signer signs checkpoints; nil leaves them unsigned.
	Signer *integrity.Signer
	// Limit bounds the events of one checkpoint (default DefaultSealBatch).
	Limit int
	// Observe, when set, is told each sealed event's lag from first sight to seal.
	Observe func(lag time.Duration)
	// Logger reports sealing (default slog.Default()).
	Logger *slog.Logger
	// Copies, when set, receives the latest checkpoint of every SealAll that made one
	// (archive.Copies at CHECKPOINT_URL).
	Copies Copier
	// Replicas are the standbys that must have flushed an event's commit before it is sealed,
	// and a checkpoint's before it is copied (the zero value: the synchronous ones). A failover
	// to one of them then never takes away what a checkpoint covers.
	Replicas store.Replicas
	// ReplicaWait bounds how long one seal waits for them (default DefaultReplicaWait); what
	// they have not flushed by then is sealed by a later SealAll.
	ReplicaWait time.Duration

	mu       sync.Mutex
	uncopied *integrity.Checkpoint // made, not yet copied: the standbys had not flushed it
}

// DefaultReplicaWait is how long a SealAll waits at most for the standbys to flush.
const DefaultReplicaWait = 5 * time.Second

// Copier keeps checkpoints outside the database.
type Copier interface {
	Put(ctx context.Context, cp integrity.Checkpoint) error
}

// SealReport says what SealAll did.
type SealReport struct {
	Sealed      int                   `json:"sealed"`
	Checkpoints int                   `json:"checkpoints"`
	Latest      *integrity.Checkpoint `json:"latest_checkpoint,omitempty"`
	// AwaitingStandbys says the standbys had not flushed what was committed when the seal
	// began (or the checkpoint it made): it is sealed (or copied) by a later SealAll.
	AwaitingStandbys bool `json:"awaiting_standbys,omitempty"`
}

// SealAll seals every event written so far, one checkpoint per Limit events. Another sealer
// at work is not an error: it seals the same events.
//
// With standbys to wait for, a round ends at a snapshot taken first, and is sealed only once
// the standbys have flushed the WAL up to where that snapshot was taken: the events it sees
// then survive a failover to any of them.
func (s *Sealer) SealAll(ctx context.Context) (SealReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rep SealReport
	limit := s.Limit
	if limit <= 0 {
		limit = DefaultSealBatch
	}
	p := store.SealParams{Limit: limit, Signer: s.Signer}
	p.Replicas, p.ReplicaWait = s.Replicas, cmp.Or(s.ReplicaWait, DefaultReplicaWait)
	for {
		p.Now = time.Now()
		res, err := s.Store.Seal(ctx, p)
		if errors.Is(err, store.ErrSealing) {
			return rep, nil
		}
		if err != nil {
			return rep, err
		}
		rep.Sealed += res.Sealed
		rep.AwaitingStandbys = res.AwaitingStandbys
		if res.Checkpoint != nil {
			rep.Checkpoints++
			rep.Latest = res.Checkpoint
		}
		if s.Observe != nil {
			for _, l := range res.Lags {
				s.Observe(l)
			}
		}
		if !res.More {
			return rep, s.copyLatest(ctx, &rep)
		}
	}
}

// copyLatest copies the newest checkpoint outside the database, once the standbys have its
// seal: a copy of a seal that a failover then took away would be a fork of the log's own
// making.
func (s *Sealer) copyLatest(ctx context.Context, rep *SealReport) error {
	if rep.Latest != nil {
		s.uncopied = rep.Latest
	}
	if s.Copies == nil || s.uncopied == nil {
		return nil
	}
	flushed, err := s.Store.AwaitStandbys(ctx, s.Replicas, cmp.Or(s.ReplicaWait, DefaultReplicaWait))
	if err != nil || !flushed {
		rep.AwaitingStandbys = !flushed
		return err
	}
	// After a failover the database may no longer have it: a copy would fork the log.
	if held, err := s.Store.Checkpoints(ctx, s.uncopied.TreeSize, s.uncopied.TreeSize, 1); err != nil {
		return err
	} else if len(held) == 0 || held[0].RootHash != s.uncopied.RootHash {
		s.uncopied = nil
		return nil
	}
	if err := s.Copies.Put(ctx, *s.uncopied); err != nil {
		return err
	}
	s.uncopied = nil
	return nil
}

// Proof is an inclusion proof of one event against a checkpoint.
type Proof struct {
	EventID     uuid.UUID            `json:"event_id"`
	EventHash   integrity.Hash       `json:"event_hash"`
	HashVersion int                  `json:"hash_version"`
	LeafIndex   uint64               `json:"leaf_index"`
	TreeSize    uint64               `json:"tree_size"`
	RootHash    integrity.Hash       `json:"root_hash"`
	AuditPath   []integrity.Hash     `json:"audit_path"`
	SealedAt    time.Time            `json:"sealed_at"`
	Checkpoint  integrity.Checkpoint `json:"checkpoint"`
	// Members are, for an event hashed with version 2, the salts of its members and the
	// digests of those erased (MemberProofOf): what recomputing its hash needs beside it.
	Members *MemberProof `json:"members,omitempty"`
	// Key is where the event's row is, as its leaf records it (not part of the proof).
	Key store.EventKey `json:"-"`
}

// ErrNotSealed means the event is stored but not in the log yet.
var ErrNotSealed = errors.New("event is not sealed yet")

// Proofs returns the inclusion proofs of the events with ids against the latest checkpoint; an
// id missing from the map is not in the log (or beyond that checkpoint).
func Proofs(ctx context.Context, st *store.Store, ids []uuid.UUID) (store.StoredCheckpoint, map[uuid.UUID]Proof, error) {
	cp, err := st.LatestCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return cp, map[uuid.UUID]Proof{}, nil
	}
	if err != nil {
		return cp, nil, err
	}
	leaves, err := st.LeavesOf(ctx, ids)
	if err != nil {
		return cp, nil, err
	}
	out := make(map[uuid.UUID]Proof, len(leaves))
	for _, l := range leaves {
		if l.Index >= cp.TreeSize {
			continue
		}
		spans, err := integrity.InclusionSpans(l.Index, cp.TreeSize)
		if err != nil {
			return cp, nil, err
		}
		path, err := st.SpanHashes(ctx, spans)
		if err != nil {
			return cp, nil, err
		}
		out[l.EventID] = Proof{EventID: l.EventID, EventHash: l.EventHash, HashVersion: l.HashVersion,
			LeafIndex: l.Index, TreeSize: cp.TreeSize, RootHash: cp.RootHash, AuditPath: path,
			SealedAt: l.SealedAt, Checkpoint: cp.Checkpoint,
			Key: store.EventKey{EventID: l.EventID, EventTimestamp: l.EventTimestamp, RetentionDays: l.RetentionDays}}
	}
	return cp, out, nil
}

// ConsistencyProof proves the tree of size m a prefix of the tree of size n.
func ConsistencyProof(ctx context.Context, st *store.Store, m, n uint64) ([]integrity.Hash, error) {
	spans, err := integrity.ConsistencySpans(m, n)
	if err != nil {
		return nil, err
	}
	if len(spans) == 0 {
		return []integrity.Hash{}, nil
	}
	return st.SpanHashes(ctx, spans)
}

// ParseKeys reads the signing key and the extra trusted public keys of a configuration.
func ParseKeys(signingKey string, publicKeys []string) (*integrity.Signer, []integrity.PublicKey, error) {
	var signer *integrity.Signer
	var trusted []integrity.PublicKey
	if signingKey != "" {
		k, err := integrity.ParsePrivateKey(signingKey)
		if err != nil {
			return nil, nil, fmt.Errorf("INTEGRITY_SIGNING_KEY: %w", err)
		}
		signer = integrity.NewSigner(k)
		trusted = append(trusted, signer.PublicKey())
	}
	for _, s := range publicKeys {
		if strings.TrimSpace(s) == "" {
			continue // an empty setting is no key, not a bad one
		}
		k, err := integrity.ParsePublicKey(s)
		if err != nil {
			return nil, nil, fmt.Errorf("INTEGRITY_PUBLIC_KEYS: %w", err)
		}
		trusted = append(trusted, k)
	}
	return signer, trusted, nil
}
