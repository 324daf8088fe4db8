package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// DeadLetter is one delivery the broker gave up on and sent to the dead-letter sink, kept as
// it came (table audit_deadletters).
type DeadLetter struct {
	DeadLetterID uuid.UUID `json:"deadletter_id"`
	ReceivedAt   time.Time `json:"received_at"`
	// SubmittedBy is the principal that delivered it.
	SubmittedBy string  `json:"submitted_by"`
	CEID        *string `json:"ce_id"`
	CESource    *string `json:"ce_source"`
	CEType      *string `json:"ce_type"`
	// ErrorCode, ErrorDest and ErrorData are Knative's knativeerrorcode, knativeerrordest and
	// knativeerrordata extensions.
	ErrorCode *int    `json:"error_code"`
	ErrorDest *string `json:"error_dest"`
	ErrorData *string `json:"error_data"`
	// Event is the CloudEvent whole in JSON (structured) form; nil when the delivery was no
	// CloudEvent.
	Event json.RawMessage `json:"event"`
	// ContentType, Headers (its Ce-* headers), Body and ParseError keep a delivery that could
	// not be read as a CloudEvent.
	ContentType *string           `json:"content_type"`
	Headers     map[string]string `json:"headers"`
	Body        []byte            `json:"body"`
	ParseError  *string           `json:"parse_error"`
	ReplayedAt  *time.Time        `json:"replayed_at"`
	ReplayedBy  *string           `json:"replayed_by"`
}

const deadLetterColumns = `deadletter_id, received_at, submitted_by, ce_id, ce_source, ce_type, error_code, error_dest,
	error_data, event, content_type, headers, body, parse_error, replayed_at, replayed_by`

func scanDeadLetter(row pgx.Row) (DeadLetter, error) {
	var d DeadLetter
	var event []byte
	err := row.Scan(&d.DeadLetterID, &d.ReceivedAt, &d.SubmittedBy, &d.CEID, &d.CESource, &d.CEType, &d.ErrorCode,
		&d.ErrorDest, &d.ErrorData, &event, &d.ContentType, &d.Headers, &d.Body, &d.ParseError, &d.ReplayedAt, &d.ReplayedBy)
	if event != nil {
		d.Event = event
	}
	return d, err
}

// InsertDeadLetter stores d (DeadLetterID and ReceivedAt are set here) and returns it as stored.
func (s *Store) InsertDeadLetter(ctx context.Context, d DeadLetter) (DeadLetter, error) {
	var event any
	if len(d.Event) > 0 {
		event = string(d.Event)
	}
	row := s.db.QueryRow(ctx, `INSERT INTO audit_deadletters (deadletter_id, submitted_by, ce_id, ce_source, ce_type,
			error_code, error_dest, error_data, event, content_type, headers, body, parse_error)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $13) RETURNING `+deadLetterColumns,
		uuid.Must(uuid.NewV7()), d.SubmittedBy, d.CEID, d.CESource, d.CEType, d.ErrorCode, d.ErrorDest, d.ErrorData,
		event, d.ContentType, d.Headers, d.Body, d.ParseError)
	out, err := scanDeadLetter(row)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("insert dead letter: %w", interpretError(err))
	}
	return out, nil
}

// DeadLetterParams select dead letters, oldest first.
type DeadLetterParams struct {
	// Pending selects only those not replayed yet.
	Pending bool
	// CEType, when set, selects one CloudEvents type.
	CEType string
	// Since and Until bound received_at (Since inclusive, Until exclusive).
	Since, Until *time.Time
	// After continues a listing after this deadletter_id (ids grow with time: UUIDv7).
	After *uuid.UUID
	// Limit bounds the rows (default 100).
	Limit int
}

// ListDeadLetters returns the dead letters p selects, in deadletter_id order.
func (s *Store) ListDeadLetters(ctx context.Context, p DeadLetterParams) ([]DeadLetter, error) {
	rows, err := s.db.Query(ctx, `SELECT `+deadLetterColumns+` FROM audit_deadletters
		WHERE (NOT $1 OR replayed_at IS NULL)
		  AND ($2 = '' OR ce_type = $2)
		  AND ($3::timestamptz IS NULL OR received_at >= $3)
		  AND ($4::timestamptz IS NULL OR received_at < $4)
		  AND ($5::uuid IS NULL OR deadletter_id > $5)
		ORDER BY deadletter_id LIMIT $6`,
		p.Pending, p.CEType, p.Since, p.Until, p.After, cmp.Or(p.Limit, 100))
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", interpretError(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeadLetter, error) { return scanDeadLetter(r) })
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", interpretError(err))
	}
	return out, nil
}

// GetDeadLetter returns one dead letter, or ErrNotFound.
func (s *Store) GetDeadLetter(ctx context.Context, id uuid.UUID) (DeadLetter, error) {
	d, err := scanDeadLetter(s.db.QueryRow(ctx, `SELECT `+deadLetterColumns+` FROM audit_deadletters WHERE deadletter_id = $1`, id))
	if err != nil {
		return DeadLetter{}, fmt.Errorf("get dead letter %s: %w", id, interpretError(err))
	}
	return d, nil
}

// ErrReplayed means a dead letter's replay was already recorded.
var ErrReplayed = errors.New("dead letter already replayed")

// MarkDeadLetterReplayed records that by replayed the dead letter id. It returns ErrNotFound
// when there is none and ErrReplayed when a replay was recorded before.
func (s *Store) MarkDeadLetterReplayed(ctx context.Context, id uuid.UUID, by string) (DeadLetter, error) {
	d, err := scanDeadLetter(s.db.QueryRow(ctx, `UPDATE audit_deadletters SET replayed_at = now(), replayed_by = $2
		WHERE deadletter_id = $1 AND replayed_at IS NULL RETURNING `+deadLetterColumns, id, by))
	if errors.Is(err, pgx.ErrNoRows) {
		if _, gerr := s.GetDeadLetter(ctx, id); gerr != nil {
			return DeadLetter{}, gerr
		}
		return DeadLetter{}, fmt.Errorf("mark dead letter %s replayed: %w", id, ErrReplayed)
	}
	if err != nil {
		return DeadLetter{}, fmt.Errorf("mark dead letter %s replayed: %w", id, interpretError(err))
	}
	return d, nil
}

// PendingDeadLetters counts the dead letters not replayed yet.
func (s *Store) PendingDeadLetters(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRow(ctx, `SELECT count(*) FROM audit_deadletters WHERE replayed_at IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count pending dead letters: %w", interpretError(err))
	}
	return n, nil
}
