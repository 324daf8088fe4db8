package integrity

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// HashVersionMembers is version 2 of the event encoding: the event hash commits to each
// personal-data-bearing member on its own (actor_id, actor_ip and the members of event_data),
// each through a salted digest, so a member can be erased later while the event still proves
// every other field and member, and the erased ones only by their digests.
//
// The format, step by step (README "Event hash, version 2" says the same for outside verifiers):
//
//  1. The committed members are named by JSON Pointers (RFC 6901) into the event's JSON object:
//     /actor_id; /actor_ip when the event has one; /event_data/<name> for each member of
//     event_data, except a member payload whose value is an object, whose members are each
//     committed as /event_data/payload/<name> instead.
//  2. A member's salt is SHA-256(salt key || its pointer in UTF-8), the event's salt key being
//     16 random bytes.
//     Once a member of the event was erased, the key is gone and the salts of the members still
//     present are kept one by one instead (Members).
//  3. A member's digest is SHA-256(salt || RFC 8785 form of its value), in lowercase hexadecimal.
//  4. The committed form is the event's JSON object as version 1 hashes it (every field, absent
//     optional fields as null, without event_hash, hash_version, integrity, withheld and erased)
//     with the value of each committed member replaced by its digest (payload stays an object,
//     of digests). An erased member's value is its kept digest.
//  5. event_hash is SHA-256 of the RFC 8785 form of the committed form.
//
// Without its salt, a digest tells nothing of a value, however few values it could have had
// (an e-mail address, an IP address): erasing a member deletes its value and its salt.
const HashVersionMembers = 2

// SaltKeySize is the size of an event's salt key.
const SaltKeySize = 16

// NewSaltKey returns a random salt key for a new event.
func NewSaltKey() []byte {
	k := make([]byte, SaltKeySize)
	ReadSaltKey(k)
	return k
}

// ReadSaltKey fills k (SaltKeySize bytes) with a random salt key: for a caller that keeps
// the key in memory of its own.
func ReadSaltKey(k []byte) {
	_, _ = rand.Read(k) // crypto/rand.Read never fails (Go 1.24)
}

// MemberSalt is the salt of the member at pointer of an event with salt key key.
func MemberSalt(key []byte, pointer string) Hash {
	h := hasher{key: key}
	return h.salt(pointer)
}

// MemberDigest is the digest of a member with salt whose value has the RFC 8785 form canonical.
func MemberDigest(salt Hash, canonical []byte) Hash {
	var h hasher
	return h.digest(salt, canonical)
}

// hasher computes one event's salts and digests, each one sha256.Sum256 over one reused
// buffer: the write path hashes every member of every event, and a hash.Hash's Sum (the
// digest escaping through the interface) allocated twice a member.
//
// A salt is one SHA-256 over the key and the pointer rather than an HMAC, which took two: the
// key is fixed-size and secret, and a length extension of a kept salt could only give the salt
// of a "pointer" holding SHA-256's padding (a 0x80 byte, not UTF-8 on its own), which no member
// has.
type hasher struct {
	key []byte
	buf []byte // what is hashed: key || pointer, or salt || value
}

func (h *hasher) salt(pointer string) Hash {
	h.buf = append(append(h.buf[:0], h.key...), pointer...)
	return sha256.Sum256(h.buf)
}

func (h *hasher) digest(salt Hash, canonical []byte) Hash {
	h.buf = append(append(h.buf[:0], salt[:]...), canonical...)
	return sha256.Sum256(h.buf)
}

// ErasedActorID is what an event whose actor_id was erased holds and serves in its place
// (actor_id is required, and at least one character).
const ErasedActorID = "[erased]"

// Pointer is the JSON Pointer (RFC 6901) of the member reached through names.
func Pointer(names ...string) string {
	var b strings.Builder
	for _, n := range names {
		b.WriteByte('/')
		b.WriteString(escapeToken(n))
	}
	return b.String()
}

// escapeToken is a member name as a JSON Pointer reference token: ~ is ~0, / is ~1.
func escapeToken(name string) string {
	if !strings.ContainsAny(name, "~/") {
		return name
	}
	return strings.ReplaceAll(strings.ReplaceAll(name, "~", "~0"), "/", "~1")
}

// Member is what an erased event keeps of one committed member: its digest always, its salt
// while the member is present (nil: the member was erased).
type Member struct {
	Digest Hash  `json:"digest"`
	Salt   *Hash `json:"salt,omitempty"`
}

// Members is what an event keeps beside it once a member was erased, by pointer: every
// committed member's digest, and the salts of those still present. Nil for an event nothing
// was erased of (its salts come from its key).
type Members map[string]Member

// Erased lists the erased members' pointers, sorted.
func (m Members) Erased() []string {
	var out []string
	for p, v := range m {
		if v.Salt == nil {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// Committed is an event's committed members in their committed form: what replaces actor_id,
// actor_ip and event_data in the JSON object version 1 hashes.
type Committed struct {
	ActorID   string
	ActorIP   *string
	EventData map[string]any
	// Digests are every committed member's digest, by pointer (the erased ones' kept ones).
	Digests map[string]Hash
}

// MemberChange is a committed member that does not match what the event keeps of it.
type MemberChange struct {
	Pointer string
	Detail  string
}

// ErrMembersChanged is the error of Commit when members do not match the event's Members.
type ErrMembersChanged []MemberChange

func (e ErrMembersChanged) Error() string {
	var parts []string
	for _, c := range e {
		parts = append(parts, c.Pointer+" "+c.Detail)
	}
	return "members changed: " + strings.Join(parts, "; ")
}

// Commit computes the committed form of an event's actor_id, actor_ip (nil: none) and
// event_data (decoded, numbers as json.Number), with its salt key, or, once a member was
// erased, its kept Members (key is then unused). With kept, a member present that was erased
// or never committed, or a member missing that was not erased, is an ErrMembersChanged; so is
// a present member whose digest is not the kept one (the event hash would not recompute
// either: this names which member changed).
func Commit(key []byte, kept Members, actorID string, actorIP *string, eventData map[string]any) (Committed, error) {
	if kept == nil && len(key) == 0 {
		return Committed{}, errors.New("a version 2 event needs its salt key or its kept members")
	}
	c := Committed{EventData: make(map[string]any, len(eventData)), Digests: make(map[string]Hash, len(eventData)+8)}
	var changes ErrMembersChanged
	var buf []byte
	hs := hasher{key: key}
	seen := map[string]bool{}
	digest := func(pointer string, value any, present bool) (string, error) {
		seen[pointer] = true
		if kept == nil {
			var err error
			if buf, err = appendValue(buf[:0], value); err != nil {
				return "", fmt.Errorf("%s: %w", pointer, err)
			}
			h := hs.digest(hs.salt(pointer), buf)
			c.Digests[pointer] = h
			return h.String(), nil
		}
		m, ok := kept[pointer]
		switch {
		case !ok:
			changes = append(changes, MemberChange{pointer, "is present but was not committed when its members were kept (added)"})
			return "", nil
		case m.Salt == nil && present:
			changes = append(changes, MemberChange{pointer, "was erased but has a value again"})
		case m.Salt == nil:
		default:
			// A present member's digest is always computed from its value; a kept digest
			// (none in a proof, which gives salts only) names the member that changed.
			var err error
			if buf, err = appendValue(buf[:0], value); err != nil {
				return "", fmt.Errorf("%s: %w", pointer, err)
			}
			h := hs.digest(*m.Salt, buf)
			if m.Digest != (Hash{}) && h != m.Digest {
				changes = append(changes, MemberChange{pointer, "no longer has the value it was committed with (modified)"})
			}
			c.Digests[pointer] = h
			return h.String(), nil
		}
		c.Digests[pointer] = m.Digest
		return m.Digest.String(), nil
	}
	// actor_id is required: an erased one holds ErasedActorID, and any other value is a change.
	var err error
	if c.ActorID, err = digest("/actor_id", actorID, !(kept != nil && actorID == ErasedActorID)); err != nil {
		return Committed{}, err
	}
	if actorIP != nil || (kept != nil && hasMember(kept, "/actor_ip")) {
		var ip any
		if actorIP != nil {
			ip = *actorIP
		}
		d, err := digest("/actor_ip", ip, actorIP != nil)
		if err != nil {
			return Committed{}, err
		}
		c.ActorIP = &d
	}
	for name, v := range eventData {
		if payload, ok := v.(map[string]any); ok && name == "payload" {
			out := make(map[string]any, len(payload))
			for pn, pv := range payload {
				if out[pn], err = digest("/event_data/payload/"+escapeToken(pn), pv, true); err != nil {
					return Committed{}, err
				}
			}
			c.EventData[name] = out
			continue
		}
		if c.EventData[name], err = digest("/event_data/"+escapeToken(name), v, true); err != nil {
			return Committed{}, err
		}
	}
	// The erased members (and any member gone without an erasure) take their kept digests.
	for _, p := range slices.Sorted(mapKeys(kept)) {
		if seen[p] {
			continue
		}
		m := kept[p]
		if m.Salt != nil {
			changes = append(changes, MemberChange{p, "is missing but was not erased (deleted)"})
		}
		c.Digests[p] = m.Digest
		switch {
		case p == "/actor_id" || p == "/actor_ip":
			// Present in the JSON form whatever they hold; handled above.
		case strings.HasPrefix(p, "/event_data/payload/"):
			payload, ok := c.EventData["payload"].(map[string]any)
			if !ok {
				payload = map[string]any{}
				c.EventData["payload"] = payload
			}
			payload[unescape(strings.TrimPrefix(p, "/event_data/payload/"))] = m.Digest.String()
		case strings.HasPrefix(p, "/event_data/"):
			c.EventData[unescape(strings.TrimPrefix(p, "/event_data/"))] = m.Digest.String()
		}
	}
	if len(changes) > 0 {
		return c, changes
	}
	return c, nil
}

func hasMember(m Members, p string) bool { _, ok := m[p]; return ok }

func mapKeys(m Members) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// unescape is the reference token of a JSON Pointer (RFC 6901: ~1 is /, ~0 is ~).
func unescape(tok string) string {
	if !strings.Contains(tok, "~") {
		return tok
	}
	return strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
}

// MembersOf returns what an event keeps beside it when members are erased: every committed
// member's digest (from Commit), the salts of those not in erase. key is the event's salt key
// (nil when members were kept before: kept then gives the salts).
func MembersOf(key []byte, kept Members, digests map[string]Hash, erase []string) Members {
	out := make(Members, len(digests))
	for p, d := range digests {
		m := Member{Digest: d}
		if !slices.Contains(erase, p) {
			switch {
			case kept != nil:
				m.Salt = kept[p].Salt
			default:
				s := MemberSalt(key, p)
				m.Salt = &s
			}
		}
		out[p] = m
	}
	return out
}

// EventHashV2 recomputes a version 2 event hash from the event's JSON form (as served,
// exported or archived: erased members absent) with its salt key, or its kept Members once a
// member was erased. It is the reference the write path's faster encoding is tested against,
// and what an outside verifier in Go would call.
func EventHashV2(eventJSON []byte, key []byte, kept Members) (Hash, error) {
	sc := scanner{src: view(eventJSON), jcs: true, decode: true, maxDepth: maxDocumentDepth}
	v, err := sc.document()
	if err != nil {
		return Hash{}, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return Hash{}, errors.New("an event is a JSON object")
	}
	for _, k := range append(slices.Clone(ExcludedFields), "withheld", "erased") {
		delete(obj, k)
	}
	actorID, _ := obj["actor_id"].(string)
	var actorIP *string
	if s, ok := obj["actor_ip"].(string); ok {
		actorIP = &s
	}
	data, ok := obj["event_data"].(map[string]any)
	if !ok {
		return Hash{}, errors.New("event_data is not a JSON object")
	}
	if kept != nil {
		// An erased actor is served as a placeholder, an erased address as absent.
		if m, ok := kept["/actor_ip"]; ok && m.Salt == nil {
			actorIP = nil
		}
	}
	c, err := Commit(key, kept, actorID, actorIP, data)
	if err != nil {
		return Hash{}, err
	}
	obj["actor_id"], obj["event_data"] = c.ActorID, c.EventData
	if c.ActorIP != nil {
		obj["actor_ip"] = *c.ActorIP
	}
	for _, k := range OptionalFields {
		if _, ok := obj[k]; !ok {
			obj[k] = nil
		}
	}
	b, err := appendValue(nil, obj)
	if err != nil {
		return Hash{}, err
	}
	return sha256.Sum256(b), nil
}

// hashV2 is the version 2 hash of e: version 1's encoding of e with actor_id, actor_ip and
// event_data in their committed form (HashVersionMembers).
func (e *Event) hashV2() (Hash, error) {
	data := e.EventData
	if len(data) == 0 {
		return Hash{}, errors.New("event_data: a version 2 event has a JSON object")
	}
	if !e.DataHashed {
		// Stored, not scanned just now: its RFC 8785 form first (the write path's is given).
		var err error
		if data, err = Canonicalize(data); err != nil {
			return Hash{}, fmt.Errorf("event_data: %w", err)
		}
	}
	c := *e
	if len(e.Members) == 0 {
		// The common case, nothing erased: the members hashed as the bytes they are.
		cc := commitPool.Get().(*canonicalCommit)
		defer cc.release()
		layout := e.DataLayout
		if !e.DataHashed {
			layout = Layout{} // of other bytes than data
		}
		if actor, ip, committed, ok := cc.commit(e.HashSalt, e.ActorID, e.ActorIP, data, layout); ok {
			c.ActorID, c.ActorIP, c.EventData, c.DataHashed = actor, ip, committed, true
			return c.hashV1()
		}
	}
	var kept Members
	if len(e.Members) > 0 {
		if err := json.Unmarshal(e.Members, &kept); err != nil {
			return Hash{}, fmt.Errorf("hash_members: %w", err)
		}
	}
	sc := scanner{src: view(data), jcs: true, decode: true, maxDepth: maxDocumentDepth}
	v, err := sc.document()
	if err != nil {
		return Hash{}, fmt.Errorf("event_data: %w", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return Hash{}, errors.New("event_data is not a JSON object")
	}
	com, err := Commit(e.HashSalt, kept, e.ActorID, e.ActorIP, obj)
	if err != nil {
		return Hash{}, err
	}
	if c.EventData, err = appendValue(nil, com.EventData); err != nil {
		return Hash{}, err
	}
	c.ActorID, c.ActorIP, c.DataHashed = com.ActorID, com.ActorIP, true
	return c.hashV1()
}

// canonicalCommit is Commit's way for the common case of the write path and the sealer, in a
// fraction of its time: no salts kept yet (key), and event_data in its RFC 8785 form (the scan
// of ParseData wrote it: Data.Hashed), whose members are then hashed as the bytes they are, and
// whose committed form is written directly. Its buffers are recycled (commitPool): per member
// it builds the pointer after the key in place and hashes with sha256.Sum256, allocating
// nothing.
type canonicalCommit struct {
	hasher
	ptr []byte // key || the pointer being built
	out []byte // the committed form of event_data
	// actor and ip hold the committed actor_id and actor_ip, which commit returns as strings
	// viewing them: hashV1 reads them before the commit is released.
	actor, ip [2 * sha256.Size]byte
	ipText    string
}

var commitPool = sync.Pool{New: func() any {
	return &canonicalCommit{hasher: hasher{buf: make([]byte, 0, 512)}, ptr: make([]byte, 0, 128), out: make([]byte, 0, 4096)}
}}

// release returns c to the pool; what commit returned must not be used after.
func (c *canonicalCommit) release() {
	if cap(c.out) > 1<<20 || cap(c.buf) > 1<<20 {
		return // grown by one huge event_data: let it go
	}
	c.key, c.ipText = nil, ""
	commitPool.Put(c)
}

// commit returns the committed actor_id, actor_ip (nil: none) and event_data (canonical, in
// c's buffer, where its members end as layout says when it says); ok is false for a member
// name with an escape, or data that is not an object in that form (use Commit).
func (c *canonicalCommit) commit(key []byte, actorID string, actorIP *string, data []byte, layout Layout) (string, *string, []byte, bool) {
	// The walk below relies on data being canonical (the scan that wrote it checked it): it
	// only finds where each member's value ends.
	if len(data) < 2 || data[0] != '{' || len(key) == 0 {
		return "", nil, nil, false
	}
	c.key = key
	actor := c.scalar(&c.actor, "/actor_id", actorID)
	var ip *string
	if actorIP != nil {
		c.ipText = c.scalar(&c.ip, "/actor_ip", *actorIP)
		ip = &c.ipText
	}
	c.ptr = append(append(c.ptr[:0], key...), "/event_data/"...)
	out, ok := c.object(c.out[:0], data, true, layout.members, layout.payload)
	c.out = out[:0]
	if !ok || len(out) == 0 {
		return "", nil, nil, false
	}
	return actor, ip, out, true
}

// scalar is the digest, in hexadecimal in dst, of the string member at pointer.
func (c *canonicalCommit) scalar(dst *[2 * sha256.Size]byte, pointer string, value string) string {
	c.out = AppendString(c.out[:0], value)
	d := c.digest(c.salt(pointer), c.out)
	hex.Encode(dst[:], d[:])
	return view(dst[:])
}

// object appends the committed form of the canonical object obj, whose members' pointers
// begin with c.ptr (after the key) and which end where ends says (nil: found by reading);
// with nested, a member payload that is an object is committed member by member, its members
// ending where payload says (empty: found by reading).
func (c *canonicalCommit) object(out, obj []byte, nested bool, ends, payload []int32) ([]byte, bool) {
	out = append(out, '{')
	i := 1
	if obj[i] == '}' {
		return append(out, '}'), true
	}
	base := len(c.ptr)
	var prev []byte
	for k := 0; ; k++ {
		first := k == 0
		// A canonical name: "...", without escapes, after the one before in byte order.
		if i >= len(obj) || obj[i] != '"' {
			return nil, false
		}
		end := bytes.IndexByte(obj[i+1:], '"')
		if end < 0 {
			return nil, false
		}
		name := obj[i+1 : i+1+end]
		if bytes.IndexByte(name, '\\') >= 0 || !first && bytes.Compare(prev, name) >= 0 {
			return nil, false
		}
		prev = name
		vstart := i + 1 + end + 2 // past the closing quote and ':'
		if vstart > len(obj) || obj[vstart-1] != ':' {
			return nil, false
		}
		vend, ok := 0, false
		switch {
		case ends == nil:
			vend, ok = valueEnd(obj, vstart)
		case k < len(ends):
			vend = int(ends[k])
			ok = vend > vstart
		}
		if !ok || vend >= len(obj) {
			return nil, false
		}
		out = append(append(append(out, '"'), name...), '"', ':')
		if nested && string(name) == "payload" && obj[vstart] == '{' {
			c.ptr = append(c.ptr[:base], "payload/"...)
			var inner []int32
			if len(payload) > 0 {
				inner = payload
			}
			if out, ok = c.object(out, obj[vstart:vend], false, inner, nil); !ok {
				return nil, false
			}
		} else {
			c.ptr = appendToken(c.ptr[:base], name)
			salt := Hash(sha256.Sum256(c.ptr))
			d := c.digest(salt, obj[vstart:vend])
			out = append(out, '"')
			out = hex.AppendEncode(out, d[:])
			out = append(out, '"')
		}
		switch obj[vend] {
		case ',':
			out = append(out, ',')
			i = vend + 1
		case '}':
			if vend+1 != len(obj) || ends != nil && k+1 != len(ends) {
				return nil, false
			}
			c.ptr = c.ptr[:base]
			return append(out, '}'), true
		default:
			return nil, false
		}
	}
}

// appendToken appends a member name as a JSON Pointer reference token (escapeToken).
func appendToken(b, name []byte) []byte {
	for _, ch := range name {
		switch ch {
		case '~':
			b = append(b, '~', '0')
		case '/':
			b = append(b, '~', '1')
		default:
			b = append(b, ch)
		}
	}
	return b
}

// valueEnd returns where the canonical JSON value at b[i:] ends: past its closing bracket or
// quote, or at the ',', '}' or ']' after a literal or number. It checks no more than the
// structure needed to find that end (the scan that wrote b checked the rest).
func valueEnd(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, ok := stringEnd(b, i)
				if !ok {
					return 0, false
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
			i++
		}
		return 0, false
	}
	start := i
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' {
		i++
	}
	return i, i > start
}

// stringEnd returns where the JSON string opening at b[i] ends, past its closing quote: the
// first quote after it that an even number of backslashes precedes.
func stringEnd(b []byte, i int) (int, bool) {
	for j := i + 1; ; j++ {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return 0, false
		}
		j += k
		escaped := false
		for p := j - 1; p > i && b[p] == '\\'; p-- {
			escaped = !escaped
		}
		if !escaped {
			return j + 1, true
		}
	}
}
