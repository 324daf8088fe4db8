// Package outsideverify is what README "Event hash, version 2" asks of someone who checks an
// event with nothing of auditstore's: the standard library only (this package imports no other
// of the repository, and the tests that use it show the served event and proof suffice).
package outsideverify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Verify is an outside verifier's whole program, the standard library only: it
// recomputes a version 2 event's hash from the event as served and its proof, checks the
// proof's audit path (RFC 9162) to the proof's root, and returns the erased members. (The
// canonical JSON here is json.Marshal with HTML escaping off, which is RFC 8785's for this
// event: ASCII member names, integers, no control characters. A general verifier uses an
// RFC 8785 library.)
func Verify(eventJSON, proofJSON []byte) ([]string, error) {
	var proof struct {
		EventHash string   `json:"event_hash"`
		LeafIndex uint64   `json:"leaf_index"`
		TreeSize  uint64   `json:"tree_size"`
		RootHash  string   `json:"root_hash"`
		AuditPath []string `json:"audit_path"`
		Members   struct {
			Salts  map[string]string `json:"salts"`
			Erased map[string]string `json:"erased"`
		} `json:"members"`
	}
	if err := json.Unmarshal(proofJSON, &proof); err != nil {
		return nil, err
	}
	var ev map[string]any
	dec := json.NewDecoder(bytes.NewReader(eventJSON))
	dec.UseNumber()
	if err := dec.Decode(&ev); err != nil {
		return nil, err
	}
	canonical := func(v any) []byte {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(v)
		return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	}
	unhex := func(s string) []byte { b, _ := hex.DecodeString(s); return b }
	used := map[string]bool{}
	var problems []string
	// digest replaces a present member's value by SHA-256(salt || canonical value).
	digest := func(pointer string, v any) string {
		used[pointer] = true
		if _, ok := proof.Members.Erased[pointer]; ok {
			problems = append(problems, pointer+" is erased but has a value")
		}
		salt, ok := proof.Members.Salts[pointer]
		if !ok {
			problems = append(problems, pointer+" has no salt")
		}
		h := sha256.Sum256(append(unhex(salt), canonical(v)...))
		return hex.EncodeToString(h[:])
	}
	for _, k := range []string{"event_hash", "hash_version", "integrity", "withheld", "erased"} {
		delete(ev, k)
	}
	if _, gone := proof.Members.Erased["/actor_id"]; !gone {
		ev["actor_id"] = digest("/actor_id", ev["actor_id"])
	}
	if ip, ok := ev["actor_ip"]; ok {
		ev["actor_ip"] = digest("/actor_ip", ip)
	}
	data := ev["event_data"].(map[string]any)
	for name, v := range data {
		if p, ok := v.(map[string]any); ok && name == "payload" {
			for pn, pv := range p {
				p[pn] = digest("/event_data/payload/"+pn, pv)
			}
			continue
		}
		data[name] = digest("/event_data/"+name, v)
	}
	var erasedMembers []string
	for pointer, d := range proof.Members.Erased {
		erasedMembers = append(erasedMembers, pointer)
		switch {
		case pointer == "/actor_id":
			ev["actor_id"] = d
		case pointer == "/actor_ip":
			ev["actor_ip"] = d
		case strings.HasPrefix(pointer, "/event_data/payload/"):
			data["payload"].(map[string]any)[strings.TrimPrefix(pointer, "/event_data/payload/")] = d
		default:
			data[strings.TrimPrefix(pointer, "/event_data/")] = d
		}
	}
	for pointer := range proof.Members.Salts {
		if !used[pointer] {
			problems = append(problems, pointer+" has a salt but no value (removed without an erasure)")
		}
	}
	for _, k := range []string{"actor_ip", "cluster_id", "duration_ms", "error_code", "error_message", "namespace",
		"parent_event_id", "resource_id", "resource_name", "resource_type", "severity", "span_id", "trace_id"} {
		if _, ok := ev[k]; !ok {
			ev[k] = nil
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	h := sha256.Sum256(canonical(ev))
	if hex.EncodeToString(h[:]) != proof.EventHash {
		return nil, fmt.Errorf("the event hashes to %x, not to the proof's event_hash %s", h, proof.EventHash)
	}
	// RFC 9162 section 2.1.3.2: the audit path from the leaf to the root.
	node := sha256.Sum256(append([]byte{0}, h[:]...))
	fn, sn := proof.LeafIndex, proof.TreeSize-1
	for _, p := range proof.AuditPath {
		sib := unhex(p)
		if sn == 0 {
			return nil, errors.New("the audit path is too long")
		}
		if fn%2 == 1 || fn == sn {
			node = sha256.Sum256(slices.Concat([]byte{1}, sib, node[:]))
			for fn%2 == 0 && fn != 0 {
				fn, sn = fn>>1, sn>>1
			}
		} else {
			node = sha256.Sum256(slices.Concat([]byte{1}, node[:], sib))
		}
		fn, sn = fn>>1, sn>>1
	}
	if sn != 0 || hex.EncodeToString(node[:]) != proof.RootHash {
		return nil, errors.New("the audit path does not lead to the proof's root")
	}
	sort.Strings(erasedMembers)
	return erasedMembers, nil
}
