// Package erasure erases named personal-data members of named events while keeping their tamper
// evidence (README "Erasure"): an event hashed with version 2 commits to each member through a
// salted digest, so deleting a member's value and salt and keeping its digest leaves the event
// hash, its leaf, its proofs and the archive check as they were, while any other change is still
// found and named. It decides; shared/store executes, in one transaction with the erasure's
// record.
package erasure

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/cold"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/google/uuid"
)

// Limits of one request.
const (
	MaxEvents  = 1000
	MaxMembers = 100
)

// Request is one erasure: the members (JSON Pointers) to erase of each event, and why.
type Request struct {
	EventIDs []uuid.UUID
	Members  []string
	Reason   string
	// By is the principal who erases (an admin).
	By string
	// Record, when set, builds the erasure's own audit event (auditstore.erasure.performed)
	// from its payload; it is stored in the erasure's transaction.
	Record func(payload map[string]any) (audit.Event, error)
	// Cold, when set, is the cold tier's mover: events of months moved there are erased too,
	// their files rewritten (cold.Mover.Rewrite) and swapped in the erasure's transaction. The
	// erasure then runs under the maintenance lock (store.ErrLocked while a run holds it), so
	// no month moves while it is erased and no file it writes is swept before it is recorded.
	Cold *cold.Mover
}

// Result says what an erasure did.
type Result struct {
	store.Erasure
	Events []store.ErasedEvent `json:"events"`
	// ColdFiles are the cold files the erasure rewrote.
	ColdFiles []ColdFileSwap `json:"cold_files,omitempty"`
}

// ColdFileSwap is a cold file an erasure replaced, and the files that replace it.
type ColdFileSwap struct {
	Replaced string   `json:"replaced"`
	By       []string `json:"by"`
}

// HeldError refuses the erasure of an event under legal hold, naming the hold.
type HeldError struct {
	EventID uuid.UUID
	Hold    *store.LegalHold // nil when the guard found the hold placed meanwhile
}

func (e *HeldError) Error() string {
	if e.Hold == nil {
		return fmt.Sprintf("event %s is under legal hold: erasure refused", e.EventID)
	}
	return fmt.Sprintf("event %s is under legal hold %s (%q, placed by %s): erasure refused", e.EventID, e.Hold.HoldID, e.Hold.Reason, e.Hold.PlacedBy)
}

// RefusedError refuses an erasure the event cannot take (its hash version, a member it does not
// have, a hash it no longer recomputes to).
type RefusedError struct {
	EventID uuid.UUID
	Detail  string
}

func (e *RefusedError) Error() string { return fmt.Sprintf("event %s: %s", e.EventID, e.Detail) }

// InvalidError is a request that is wrong whatever the events: it names the field.
type InvalidError struct {
	Field, Detail string
}

func (e *InvalidError) Error() string { return e.Field + " " + e.Detail }

// envelopeRequired are event_data's members the common envelope requires: they say which
// service did what, never who, and kubernaut's client needs them to decode the event.
var envelopeRequired = []string{"/event_data/version", "/event_data/service", "/event_data/operation", "/event_data/status"}

// Erasable reports why a pointer cannot name an erasable member ("" when it can): actor_id,
// actor_ip, a member of event_data other than the envelope's required ones, or a member of
// event_data.payload.
func Erasable(pointer string) string {
	switch {
	case pointer == "/actor_id", pointer == "/actor_ip":
		return ""
	case slices.Contains(envelopeRequired, pointer):
		return "is a member the event_data envelope requires, which names no person"
	case strings.HasPrefix(pointer, "/event_data/payload/"):
		if rest := strings.TrimPrefix(pointer, "/event_data/payload/"); rest != "" && !strings.Contains(rest, "/") {
			return ""
		}
	case strings.HasPrefix(pointer, "/event_data/"):
		if rest := strings.TrimPrefix(pointer, "/event_data/"); rest != "" && !strings.Contains(rest, "/") {
			return ""
		}
	}
	return `is not an erasable member: "/actor_id", "/actor_ip", "/event_data/<member>" or "/event_data/payload/<member>" (JSON Pointers)`
}

// Check validates a request before any event is read.
func (r *Request) Check() error {
	switch {
	case len(r.EventIDs) == 0 || len(r.EventIDs) > MaxEvents:
		return &InvalidError{"event_ids", fmt.Sprintf("must hold 1 to %d event ids", MaxEvents)}
	case len(r.Members) == 0 || len(r.Members) > MaxMembers:
		return &InvalidError{"members", fmt.Sprintf("must hold 1 to %d members (JSON Pointers such as /actor_id or /event_data/payload/annotations)", MaxMembers)}
	case strings.TrimSpace(r.Reason) == "" || len(r.Reason) > 1024:
		return &InvalidError{"reason", "is required (1 to 1024 characters): an erasure says why"}
	}
	for _, m := range r.Members {
		if why := Erasable(m); why != "" {
			return &InvalidError{"members", fmt.Sprintf("%q %s", m, why)}
		}
	}
	return nil
}

// Erase erases r.Members of every event of r.EventIDs, all or nothing: an event not stored is
// store.ErrNotFound, one under legal hold a HeldError, one hashed with version 1, without any of
// the members, or no longer recomputing to its own event_hash (erasing would hide that change)
// a RefusedError. A member an event no longer has because it was erased before is skipped.
func Erase(ctx context.Context, st *store.Store, r Request) (Result, error) {
	if err := r.Check(); err != nil {
		return Result{}, err
	}
	p := store.EraseParams{EventIDs: r.EventIDs, Reason: r.Reason, ErasedBy: r.By, Decide: func(e audit.Event, hold *store.LegalHold) (audit.Event, []string, error) {
		if hold != nil {
			return e, nil, &HeldError{EventID: e.EventID, Hold: hold}
		}
		return erase(e, r.Members)
	}}
	var swapped []ColdFileSwap
	var rewritten []cold.Rewritten
	if r.Cold != nil {
		m, err := st.BeginMaintenance(ctx)
		if err != nil {
			return Result{}, err
		}
		defer m.End()
		if acts, err := r.Cold.SweepCold(ctx); err != nil {
			slog.Warn("erasure: sweep the cold tier", "error", err)
		} else if len(acts) > 0 {
			slog.Info("erasure: swept the cold tier", "objects", len(acts))
		}
		if rewritten, err = planCold(ctx, st, r, &p); err != nil {
			return Result{}, err
		}
		for _, rw := range rewritten {
			sw := ColdFileSwap{Replaced: rw.Old.Key}
			for _, f := range rw.New {
				sw.By = append(sw.By, f.Key)
			}
			swapped = append(swapped, sw)
		}
	}
	if r.Record != nil {
		p.Record = func(er store.Erasure, events []store.ErasedEvent) (audit.Event, error) {
			payload := map[string]any{"erasure_id": er.ErasureID, "reason": er.Reason, "events": events}
			if len(swapped) > 0 {
				payload["cold_files"] = swapped
			}
			return r.Record(payload)
		}
	}
	er, events, err := st.Erase(ctx, p)
	if err != nil && r.Cold != nil {
		r.Cold.Discard(context.WithoutCancel(ctx), rewritten)
	}
	if errors.Is(err, store.ErrHeld) {
		return Result{}, &HeldError{EventID: heldEvent(err, r.EventIDs)}
	}
	if err != nil {
		return Result{}, err
	}
	if r.Cold != nil {
		if err := r.Cold.Retire(context.WithoutCancel(ctx), rewritten); err != nil {
			// Done and recorded: the files the catalogue no longer names go at the next sweep.
			slog.Error("erasure: delete replaced cold files", "error", err, "erasure_id", er.ErasureID)
		}
	}
	return Result{Erasure: er, Events: events, ColdFiles: swapped}, nil
}

// planCold finds the events of r in the cold tier's files, decides their erasure, and writes
// the files that are to replace theirs; p is given the hot events to erase, the cold ones and
// the swaps. A hot event is looked for in the catalogue's files of its month too: a month
// whose move was interrupted between its files' record and its drop is in both tiers, and the
// drop would otherwise leave the copy the erasure did not reach.
func planCold(ctx context.Context, st *store.Store, r Request, p *store.EraseParams) (rws []cold.Rewritten, err error) {
	defer func() {
		if err != nil {
			r.Cold.Discard(context.WithoutCancel(ctx), rws)
			rws = nil
		}
	}()
	places, err := st.PlaceEvents(ctx, r.EventIDs)
	if err != nil {
		return nil, err
	}
	p.EventIDs = nil
	for _, id := range r.EventIDs {
		pl, ok := places[id]
		if !ok {
			return nil, fmt.Errorf("erase: event %s: %w", id, store.ErrNotFound)
		}
		if pl.Hot && !slices.Contains(p.EventIDs, id) {
			p.EventIDs = append(p.EventIDs, id)
		}
	}
	files, err := r.Cold.Store.ColdFiles(ctx)
	if err != nil {
		return nil, err
	}
	found := map[uuid.UUID]bool{}
	for _, f := range files {
		var want []uuid.UUID
		for id, pl := range places {
			if pl.RetentionDays == f.Class && !pl.EventTimestamp.Before(f.MinEventTimestamp) && !pl.EventTimestamp.After(f.MaxEventTimestamp) {
				want = append(want, id)
			}
		}
		if len(want) == 0 {
			continue
		}
		rw, ok, err := r.Cold.Rewrite(ctx, f, func(e *audit.Event) (bool, error) {
			if !slices.Contains(want, e.EventID) {
				return false, nil
			}
			found[e.EventID] = true
			hold, err := st.HoldOn(ctx, e)
			if err != nil {
				return false, err
			}
			if hold != nil {
				return false, &HeldError{EventID: e.EventID, Hold: hold}
			}
			out, members, err := erase(*e, r.Members)
			if err != nil || len(members) == 0 {
				return false, err
			}
			// As the hot erasure's UPDATE stores it, so a cold file holds event_data in one form.
			if out.EventData, err = st.JSONBText(ctx, out.EventData); err != nil {
				return false, err
			}
			if !places[e.EventID].Hot && !slices.ContainsFunc(p.Cold, func(c store.ColdErasure) bool { return c.Event.EventID == e.EventID }) {
				p.Cold = append(p.Cold, store.ColdErasure{Event: *e, Members: members, ContentHash: out.ContentHash})
			}
			*e = out
			return true, nil
		})
		if err != nil {
			var refused *RefusedError
			var held *HeldError
			if errors.As(err, &refused) || errors.As(err, &held) {
				return rws, unwrapDecision(err)
			}
			if errors.Is(err, archive.ErrVerify) {
				return rws, &RefusedError{EventID: want[0], Detail: fmt.Sprintf("is in cold file %s, which no longer reads as it was written (verify -archive names how): an erasure would hide that", f.Key)}
			}
			return rws, err
		}
		if ok {
			rws = append(rws, rw)
			p.Swaps = append(p.Swaps, store.ColdSwap{Old: rw.Old, New: rw.New})
		}
	}
	for _, id := range r.EventIDs {
		if !places[id].Hot && !found[id] {
			return rws, fmt.Errorf("erase: event %s: %w", id, store.ErrNotFound)
		}
	}
	return rws, nil
}

// unwrapDecision returns the RefusedError or HeldError err wraps, as Erase returns them.
func unwrapDecision(err error) error {
	var refused *RefusedError
	if errors.As(err, &refused) {
		return refused
	}
	var held *HeldError
	errors.As(err, &held)
	return held
}

// heldEvent finds the event id the store's ErrHeld names.
func heldEvent(err error, ids []uuid.UUID) uuid.UUID {
	for _, id := range ids {
		if strings.Contains(err.Error(), id.String()) {
			return id
		}
	}
	return uuid.Nil
}

// erase returns e without members, as it is to be stored, and the members it erased.
func erase(e audit.Event, members []string) (audit.Event, []string, error) {
	refuse := func(format string, args ...any) (audit.Event, []string, error) {
		return e, nil, &RefusedError{EventID: e.EventID, Detail: fmt.Sprintf(format, args...)}
	}
	if e.HashVersion != integrity.HashVersionMembers {
		return refuse("is hashed with version %d, whose hash commits to its whole content at once: erasing a member would leave it unverifiable (only events hashed with version 2 can be erased)", e.HashVersion)
	}
	if h, err := ledger.Recompute(e); err != nil || !slices.Equal(h[:], e.EventHash) {
		return refuse("no longer recomputes to its event_hash (it was changed since it was written; verify names how): an erasure would hide that")
	}
	decoded := map[string]any{}
	dec := json.NewDecoder(bytes.NewReader(e.EventData))
	dec.UseNumber() // numbers stay as written: the hash of the members left depends on it
	if err := dec.Decode(&decoded); err != nil {
		return e, nil, fmt.Errorf("event %s: event_data: %w", e.EventID, err)
	}
	c, err := ledger.Commitments(&e, nil)
	if err != nil {
		return e, nil, err
	}
	kept, err := ledger.KeptMembers(&e)
	if err != nil {
		return e, nil, err
	}
	already := kept.Erased()
	var now []string
	for _, m := range members {
		switch _, has := c.Digests[m]; {
		case slices.Contains(already, m):
		case !has:
			return refuse("has no member %s", m)
		default:
			now = append(now, m)
		}
	}
	if len(now) == 0 {
		return e, nil, nil // every member was erased before: nothing to do
	}
	out := e
	for _, m := range now {
		switch {
		case m == "/actor_id":
			out.ActorID = integrity.ErasedActorID
		case m == "/actor_ip":
			out.ActorIP = nil
		case strings.HasPrefix(m, "/event_data/payload/"):
			payload, _ := decoded["payload"].(map[string]any)
			delete(payload, unescape(strings.TrimPrefix(m, "/event_data/payload/")))
		default:
			delete(decoded, unescape(strings.TrimPrefix(m, "/event_data/")))
		}
	}
	data, err := integrity.Canonicalize(mustJSON(decoded))
	if err != nil {
		return e, nil, err
	}
	out.EventData = data
	kept = integrity.MembersOf(e.HashSalt, kept, c.Digests, append(already, now...))
	if out.HashMembers, err = json.Marshal(kept); err != nil {
		return e, nil, err
	}
	out.HashSalt = nil
	// What the client sent, hashed whole, would let an erased value be guessed: the content
	// hash becomes one of the event hash (a retry of the original is then a conflict).
	ch := sha256.Sum256(append([]byte("auditstore erased "), e.EventHash...))
	out.ContentHash = ch[:]
	if h, err := ledger.Recompute(out); err != nil || !slices.Equal(h[:], e.EventHash) {
		return e, nil, fmt.Errorf("event %s: the erased event does not recompute to its hash (%v): nothing erased", e.EventID, err)
	}
	slices.Sort(now)
	return out, now, nil
}

// unescape is a JSON Pointer reference token's member name.
func unescape(tok string) string { return strings.NewReplacer("~1", "/", "~0", "~").Replace(tok) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // a decoded JSON object always encodes
	}
	return b
}
