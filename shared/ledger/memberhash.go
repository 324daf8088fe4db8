package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/integrity"
)

// DefaultHashVersion is the event encoding new events are hashed with: version 2, whose
// members can be erased later without breaking the event's proof (integrity.HashVersionMembers).
const DefaultHashVersion = integrity.HashVersionMembers

// KeptMembers decodes what an erased event keeps of its members (nil: nothing was erased).
func KeptMembers(e *audit.Event) (integrity.Members, error) {
	if len(e.HashMembers) == 0 {
		return nil, nil
	}
	var m integrity.Members
	if err := json.Unmarshal(e.HashMembers, &m); err != nil {
		return nil, fmt.Errorf("event %s: hash_members: %w", e.EventID, err)
	}
	return m, nil
}

// Commitments returns the committed form of e's members (version 2): every member's digest,
// and, when e's members were kept (an erasure), whether each still matches. decoded is e's
// event_data decoded (nil: decoded here).
func Commitments(e *audit.Event, decoded map[string]any) (integrity.Committed, error) {
	if decoded == nil {
		var err error
		if decoded, err = decodeData(e.EventData); err != nil {
			return integrity.Committed{}, err
		}
	}
	kept, err := KeptMembers(e)
	if err != nil {
		return integrity.Committed{}, err
	}
	var ip *string
	if e.ActorIP != nil {
		ip = e.ActorIP
	}
	return integrity.Commit(e.HashSalt, kept, e.ActorID, ip, decoded)
}

// decodeData decodes event_data as the hash reads it (numbers kept as written).
func decodeData(raw json.RawMessage) (map[string]any, error) {
	var v any
	if err := decodeNumbers(raw, &v); err != nil {
		return nil, fmt.Errorf("event_data: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("event_data is not a JSON object")
	}
	return m, nil
}

func decodeNumbers(raw []byte, v *any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(v)
}

// MemberProof is what a verifier needs beside a version 2 event's JSON form to recompute its
// hash (integrity.EventHashV2): the salt of every member present, and the digest of every
// member erased. It shows exactly which members were erased: those given by digest only.
type MemberProof struct {
	Salts  map[string]integrity.Hash `json:"salts"`
	Erased map[string]integrity.Hash `json:"erased"`
}

// Kept returns the proof as the kept members EventHashV2 takes.
func (p *MemberProof) Kept() integrity.Members {
	m := integrity.Members{}
	for ptr, s := range p.Salts {
		s := s
		m[ptr] = integrity.Member{Salt: &s}
	}
	for ptr, d := range p.Erased {
		m[ptr] = integrity.Member{Digest: d}
	}
	return m
}

// MemberProofOf returns e's member proof; nil for an event of version 1.
func MemberProofOf(e *audit.Event) (*MemberProof, error) {
	if e.HashVersion != integrity.HashVersionMembers {
		return nil, nil
	}
	c, err := Commitments(e, nil)
	if err != nil {
		return nil, err
	}
	kept, err := KeptMembers(e)
	if err != nil {
		return nil, err
	}
	p := &MemberProof{Salts: map[string]integrity.Hash{}, Erased: map[string]integrity.Hash{}}
	for ptr, d := range c.Digests {
		switch {
		case kept == nil:
			p.Salts[ptr] = integrity.MemberSalt(e.HashSalt, ptr)
		case kept[ptr].Salt != nil:
			p.Salts[ptr] = *kept[ptr].Salt
		default:
			p.Erased[ptr] = d
		}
	}
	return p, nil
}

// ChangeDetail is changeDetail for other verifiers of stored events (the archive check).
func ChangeDetail(e *audit.Event, err error) string { return changeDetail(e, err) }

// changeDetail says what changed in a modified event, as far as it can be told: for a version
// 2 event whose members were kept (an erasure), the members whose values no longer match their
// digests (or that are gone, or back), else that a field outside them changed. err is the
// event's recomputation error, if any.
func changeDetail(e *audit.Event, err error) string {
	var changed integrity.ErrMembersChanged
	if errors.As(err, &changed) {
		return "; " + changed.Error()
	}
	if e.HashVersion == integrity.HashVersionMembers && len(e.HashMembers) > 0 && err == nil {
		return fmt.Sprintf("; its members match what it keeps of them (erased: %s), so a field outside them changed", strings.Join(e.Erased, ", "))
	}
	if err != nil {
		return "; " + err.Error()
	}
	return ""
}
