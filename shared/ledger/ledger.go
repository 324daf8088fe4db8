// Package ledger keeps auditstore's tamper-evident log: it hashes events as they are written,
// seals them into the Merkle log with signed checkpoints, answers proofs and verifies the
// store against the log. The cryptography is shared/integrity's; the SQL is shared/store's.
package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/google/uuid"
)

// Recompute returns the event hash of an event's fields (integrity.EventHash of its JSON form).
func Recompute(e audit.Event) (integrity.Hash, error) {
	e.EventHash, e.HashVersion = nil, 0
	e.EventTimestamp = e.EventTimestamp.UTC()
	e.ReceivedAt = e.ReceivedAt.UTC()
	b, err := json.Marshal(e)
	if err != nil {
		return integrity.Hash{}, err
	}
	return integrity.EventHash(b)
}

// Hash sets e's event hash, as the write path does before storing it. It fails only for
// event_data that has no RFC 8785 form (a number beyond the double range).
func Hash(e *audit.Event) error {
	h, err := Recompute(*e)
	if err != nil {
		return err
	}
	e.EventHash, e.HashVersion = h[:], integrity.HashVersion
	return nil
}

// Sealer appends written events to the log.
type Sealer struct {
	// Store is where the log lives.
	Store *store.Store
	// Signer signs checkpoints; nil leaves them unsigned.
	Signer *integrity.Signer
	// Limit bounds the events of one checkpoint (default 5000).
	Limit int
	// Observe, when set, is told each sealed event's lag from first sight to seal.
	Observe func(lag time.Duration)
	// Logger reports sealing (default slog.Default()).
	Logger *slog.Logger
	// Copies, when set, receives the latest checkpoint of every SealAll that made one.
	Copies *Copies
}

// SealReport says what SealAll did.
type SealReport struct {
	Sealed      int                   `json:"sealed"`
	Checkpoints int                   `json:"checkpoints"`
	Latest      *integrity.Checkpoint `json:"latest_checkpoint,omitempty"`
}

// SealAll seals every event written so far, one checkpoint per Limit events. Another sealer
// at work is not an error: it seals the same events.
func (s *Sealer) SealAll(ctx context.Context) (SealReport, error) {
	var rep SealReport
	limit := s.Limit
	if limit <= 0 {
		limit = 5000
	}
	p := store.SealParams{Limit: limit, Hash: Recompute}
	if s.Signer != nil {
		p.Sign = s.Signer.Sign
	}
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
		if res.Checkpoint != nil {
			rep.Checkpoints++
			rep.Latest = res.Checkpoint
		}
		if s.Observe != nil {
			for _, l := range res.Lags {
				s.Observe(l)
			}
		}
		if res.Sealed < limit {
			if s.Copies != nil && rep.Latest != nil {
				if err := s.Copies.Put(ctx, *rep.Latest); err != nil {
					return rep, err
				}
			}
			return rep, nil
		}
	}
}

// Run seals every interval until ctx ends; a failed round is logged and retried next time.
func (s *Sealer) Run(ctx context.Context, interval time.Duration) {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if rep, err := s.SealAll(ctx); err != nil && ctx.Err() == nil {
			log.Error("seal", "err", err)
		} else if rep.Sealed > 0 {
			log.Debug("sealed", "events", rep.Sealed, "tree_size", rep.Latest.TreeSize)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
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
			SealedAt: l.SealedAt, Checkpoint: cp.Checkpoint}
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
		k, err := integrity.ParsePublicKey(s)
		if err != nil {
			return nil, nil, fmt.Errorf("INTEGRITY_PUBLIC_KEYS: %w", err)
		}
		trusted = append(trusted, k)
	}
	return signer, trusted, nil
}
