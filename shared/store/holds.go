package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// LegalHold keeps the events it covers from deletion, whatever their retention, until it is
// released. It covers the events of a correlation_id and/or those whose row (as JSON) contains
// Filter, optionally within [Since, Until).
type LegalHold struct {
	HoldID        uuid.UUID       `json:"hold_id"`
	CorrelationID *string         `json:"correlation_id"`
	Filter        json.RawMessage `json:"filter"`
	Since         *time.Time      `json:"since"`
	Until         *time.Time      `json:"until"`
	Reason        string          `json:"reason"`
	PlacedBy      string          `json:"placed_by"`
	PlacedAt      time.Time       `json:"placed_at"`
	ReleasedAt    *time.Time      `json:"released_at"`
	ReleasedBy    *string         `json:"released_by"`
	ReleaseReason *string         `json:"release_reason"`
}

const holdColumns = `hold_id, correlation_id, filter, since, until, reason, placed_by, placed_at, released_at, released_by, release_reason`

func scanHold(row pgx.Row) (LegalHold, error) {
	var h LegalHold
	var filter []byte
	err := row.Scan(&h.HoldID, &h.CorrelationID, &filter, &h.Since, &h.Until, &h.Reason, &h.PlacedBy, &h.PlacedAt, &h.ReleasedAt, &h.ReleasedBy, &h.ReleaseReason)
	if filter != nil {
		h.Filter = filter
	}
	return h, err
}

// PlaceHold stores a new legal hold (HoldID, PlacedAt are set here).
func (s *Store) PlaceHold(ctx context.Context, h LegalHold) (LegalHold, error) {
	var filter any
	if len(h.Filter) > 0 {
		filter = string(h.Filter)
	}
	row := s.db.QueryRow(ctx, `INSERT INTO audit_legal_holds (hold_id, correlation_id, filter, since, until, reason, placed_by)
		VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7) RETURNING `+holdColumns,
		uuid.Must(uuid.NewV7()).String(), h.CorrelationID, filter, h.Since, h.Until, h.Reason, h.PlacedBy)
	out, err := scanHold(row)
	if err != nil {
		return LegalHold{}, fmt.Errorf("place hold: %w", interpretError(err))
	}
	return out, nil
}

// ListHolds returns the holds, active ones only unless all.
func (s *Store) ListHolds(ctx context.Context, all bool) ([]LegalHold, error) {
	rows, err := s.db.Query(ctx, `SELECT `+holdColumns+` FROM audit_legal_holds WHERE $1 OR released_at IS NULL ORDER BY placed_at`, all)
	if err != nil {
		return nil, fmt.Errorf("list holds: %w", interpretError(err))
	}
	defer rows.Close()
	out := []LegalHold{}
	for rows.Next() {
		h, err := scanHold(rows)
		if err != nil {
			return nil, fmt.Errorf("list holds: %w", interpretError(err))
		}
		out = append(out, h)
	}
	return out, interpretError(rows.Err())
}

// ReleaseHold ends an active hold; ErrNotFound when there is no such active hold.
func (s *Store) ReleaseHold(ctx context.Context, id uuid.UUID, by, reason string) (LegalHold, error) {
	row := s.db.QueryRow(ctx, `UPDATE audit_legal_holds SET released_at = now(), released_by = $2, release_reason = $3
		WHERE hold_id = $1 AND released_at IS NULL RETURNING `+holdColumns, id.String(), by, reason)
	h, err := scanHold(row)
	if err != nil {
		return LegalHold{}, fmt.Errorf("release hold %s: %w", id, interpretError(err))
	}
	return h, nil
}
