// Package integrity is auditstore's tamper evidence as pure logic: the canonical JSON forms and
// the hashes taken over them (an event's content hash and its event hash), the append-only
// Merkle log of RFC 9162 (leaf and node hashes, roots, inclusion, consistency and range
// proofs), and Ed25519-signed checkpoints. It does no I/O and imports no other package of
// auditstore, so an auditor's offline verifier can use it alone.
package integrity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// Canonicalize returns the RFC 8785 (JSON Canonicalization Scheme) form of a JSON value:
// object members sorted by the UTF-16 code units of their names, no insignificant white space,
// strings with only the escapes ECMAScript's JSON.stringify makes, and every number as the
// shortest ECMAScript spelling of its IEEE 754 double. Members named in drop are left out of
// the top-level object. A member name given twice keeps its last value, as PostgreSQL's jsonb
// does. A number outside the double range or invalid UTF-8 is an error: such a value has no
// canonical form.
func Canonicalize(raw []byte, drop ...string) ([]byte, error) {
	return AppendCanonical(make([]byte, 0, len(raw)), raw, drop...)
}

// AppendCanonical appends Canonicalize(raw, drop...) to buf.
func AppendCanonical(buf, raw []byte, drop ...string) ([]byte, error) {
	s := scanner{src: view(raw), out: buf, jcs: true, maxDepth: maxDocumentDepth, drop: drop}
	if _, err := s.document(); err != nil {
		return nil, err
	}
	return s.out, nil
}

// maxDocumentDepth bounds the nesting Canonicalize follows: far above what any stored event
// holds (event_data at most 32 levels inside an event inside an export), and low enough that
// recursion on hostile input stays cheap.
const maxDocumentDepth = 512

// Data is event_data after ParseData: checked, in both canonical forms, and decoded.
type Data struct {
	// Stored is the form that is stored and that the content hash covers: members sorted by
	// the bytes of their names, no insignificant white space, strings with only the escapes
	// JSON requires (those of RFC 8785), integers spelled exactly at any size and every other
	// number as the shortest spelling of its double (1.0, 1e0 and 1 are one value).
	Stored []byte
	// Hashed is the RFC 8785 form the event hash covers. It differs from Stored only for a
	// number beyond 2^53 or one that strconv's 'g' spells otherwise than ECMAScript (1e+06),
	// or for member names beyond U+FFFF; otherwise it is the same slice.
	Hashed []byte
	// Value is event_data decoded: map[string]any, []any, string, json.Number (its spelling
	// as sent), bool and nil. ParseDataIn leaves it nil: its caller reads Stored instead.
	Value map[string]any
	// NumbersAsSent says every number of Stored is spelled as it was sent (1.5 is, 1.0, 1e3
	// and -0 are not), so Stored read again gives the numbers Value would hold.
	NumbersAsSent bool
	// Layout is where the members of Hashed end, as the scan that wrote it found them.
	Layout Layout
}

// Layout is where each member of event_data's object ends in its RFC 8785 form, and each
// member of its payload member when that is an object: offsets from the object's opening
// brace, in the order written. The member digests of version 2 take them from the one scan
// that checked and wrote event_data instead of reading every value again to find its end.
// The zero Layout says nothing: the ends are then found by reading.
type Layout struct {
	members, payload []int32
}

// ParseData reads event_data once: it checks that it is an I-JSON object (RFC 7493: valid
// UTF-8, no member name twice in an object, no lone surrogate, every number a finite double
// that does not underflow) without U+0000 (PostgreSQL's jsonb cannot store it), nested at
// most maxDepth levels (event_data itself being level 1) and at most maxBytes long in its
// stored form; and it writes that form and decodes the value in the same pass. Its cost is
// linear in len(raw) whatever the shape; sorting members copies an object's text once per
// level it lies under, and the levels are bounded. An error says what is wrong, for people.
func ParseData(raw []byte, maxDepth, maxBytes int) (Data, error) {
	// The decoded strings are substrings of one copy of raw: event_data is mostly short
	// strings, and allocating each was the largest share of the write path's garbage.
	d, end, err := parseData(string(raw), 0, make([]byte, 0, len(raw)), maxDepth, maxBytes, true)
	if err == nil && skipSpace(raw, end) != len(raw) {
		return Data{}, errors.New("is not valid JSON: data after the value")
	}
	return d, err
}

// ParseDataIn is ParseData of the JSON value at text[at:] (after white space), where more may
// follow it, without decoding it (Data.Value is nil): it returns where the value ends. A
// decoder that holds a whole request body as one string checks and writes the event_data
// inside it so, in the same pass as the rest of the body; what event_data holds is read from
// Data.Stored after, without the maps and interface values a decoded form costs.
func ParseDataIn(text string, at, maxDepth, maxBytes int) (Data, int, error) {
	// Where the value ends is not known yet: it is written into a recycled buffer and copied
	// out at its size, rather than into one grown (and kept) larger than it.
	buf := outPool.Get().(*[]byte)
	d, end, err := parseData(text, at, *buf, maxDepth, maxBytes, false)
	if err == nil {
		*buf = d.Stored[:0]
		same := &d.Hashed[0] == &d.Stored[0]
		d.Stored = bytes.Clone(d.Stored)
		if same {
			d.Hashed = d.Stored
		}
	}
	if cap(*buf) <= 1<<20 {
		outPool.Put(buf)
	}
	return d, end, err
}

var outPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func parseData(text string, at int, out []byte, maxDepth, maxBytes int, decode bool) (Data, int, error) {
	s := scanner{src: text, i: at, out: out, strict: true, decode: decode, maxDepth: maxDepth, laysOut: true}
	v, err := s.run()
	if err != nil {
		return Data{}, 0, err
	}
	obj, ok := v.(map[string]any)
	if !decode {
		ok = len(s.out) > 0 && s.out[0] == '{'
	}
	if !ok {
		return Data{}, 0, errors.New("must be a JSON object")
	}
	if len(s.out) > maxBytes {
		return Data{}, 0, fmt.Errorf("is %d bytes as compact JSON; at most %d (%d KiB) are accepted", len(s.out), maxBytes, maxBytes>>10)
	}
	d := Data{Stored: s.out, Hashed: s.out, Value: obj, NumbersAsSent: !s.respelled, Layout: s.layout}
	if s.differs {
		d.Layout = Layout{} // of Stored, not of Hashed
		// Rare: written again, RFC 8785's way, from the form just written.
		if d.Hashed, err = Canonicalize(s.out); err != nil {
			return Data{}, 0, err
		}
	}
	return d, s.i, nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scratch is a scanner's working memory, recycled: growing it anew for every event was half
// of what a scan allocated.
type scratch struct {
	members []member // the members of the open objects, outermost first
	tmp     []byte   // where an unsorted object's members are moved to be put in order
	order   []int32  // the order of an unsorted object's members
	// ends are where the members of the object just written end (laysOut), payload those of
	// the top-level object's payload member.
	ends, payload []int32
}

var scratchPool = sync.Pool{New: func() any { return &scratch{members: make([]member, 0, 64)} }}

// release returns sc to the pool without the strings and values it points to.
func (sc *scratch) release() {
	if cap(sc.members) > 1<<12 || cap(sc.tmp) > 1<<20 {
		return // grown by one huge document: let it go
	}
	clear(sc.members[:cap(sc.members)])
	sc.members = sc.members[:0]
	scratchPool.Put(sc)
}

// view is b as a string without a copy, for a scan that keeps nothing of it.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// scanner reads a JSON text once and writes its canonical form as it goes. jcs selects RFC
// 8785's spellings (numbers as ECMAScript doubles, names in UTF-16 order) over the stored
// form's (exact integers, 'g' spelling, names in byte order); strict applies I-JSON's rules
// and refuses U+0000, where otherwise a repeated name keeps its last value, as jsonb does.
type scanner struct {
	src      string
	i        int
	out      []byte
	jcs      bool
	strict   bool
	decode   bool
	maxDepth int
	drop     []string // top-level members left out
	differs  bool     // the stored form written differs from the RFC 8785 form
	// respelled: a number was written otherwise than it was sent (Data.NumbersAsSent).
	respelled bool
	// laysOut: the scan records the Layout of the top-level object (layout); inPayload: the
	// value being read is the top-level object's payload member.
	laysOut, inPayload bool
	layout             Layout
	*scratch
	err error
}

// member is one member of an object being written: its name (unescaped), its text in out, and
// its value when the scan decodes.
type member struct {
	name       string
	start, end int
	value      any
}

// run reads one value at s.i.
func (s *scanner) run() (any, error) {
	s.scratch = scratchPool.Get().(*scratch)
	defer func() { s.scratch.release(); s.scratch = nil }()
	v, ok := s.value(0)
	if !ok {
		return nil, s.err
	}
	return v, nil
}

// document reads the whole text: one value, white space around it.
func (s *scanner) document() (any, error) {
	v, err := s.run()
	if err != nil {
		return nil, err
	}
	s.space()
	if s.i != len(s.src) {
		return nil, errors.New("is not valid JSON: data after the value")
	}
	return v, nil
}

func (s *scanner) space() {
	for s.i < len(s.src) {
		switch s.src[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) fail(msg string) (any, bool) {
	if s.err == nil {
		s.err = errors.New(msg)
	}
	return nil, false
}

func (s *scanner) syntax(what string) (any, bool) {
	if s.i >= len(s.src) {
		return s.fail("is not valid JSON: unexpected end of input")
	}
	return s.fail(fmt.Sprintf("is not valid JSON: %s at byte %d", what, s.i))
}

// value reads the value at s.i inside depth open containers.
func (s *scanner) value(depth int) (any, bool) {
	s.space()
	if s.i >= len(s.src) {
		return s.syntax("")
	}
	switch c := s.src[s.i]; {
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		str, ok := s.str(s.decode)
		if !ok || !s.decode {
			return nil, ok
		}
		return str, true
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return true, s.literal("true")
	case c == 'f':
		return false, s.literal("false")
	case c == 'n':
		return nil, s.literal("null")
	}
	return s.syntax(fmt.Sprintf("unexpected %q where a value is expected", s.src[s.i]))
}

func (s *scanner) literal(word string) bool {
	if !strings.HasPrefix(s.src[s.i:], word) {
		s.syntax("invalid literal")
		return false
	}
	s.i += len(word)
	s.out = append(s.out, word...)
	return true
}

func (s *scanner) enter(depth int) bool {
	if depth > s.maxDepth {
		s.fail(fmt.Sprintf("nests objects and arrays deeper than %d levels", s.maxDepth))
		return false
	}
	return true
}

func (s *scanner) object(depth int) (any, bool) {
	if !s.enter(depth) {
		return nil, false
	}
	s.i++ // {
	s.out = append(s.out, '{')
	open, base := len(s.out), len(s.members)
	defer func() { s.members = s.members[:base] }()
	laidOut := s.laysOut && (depth == 1 || depth == 2 && s.inPayload)
	s.inPayload = false
	if laidOut && depth == 1 {
		s.payload = s.payload[:0] // a recycled scratch's were another scan's
	}
	sorted := true
	s.space()
	if s.i < len(s.src) && s.src[s.i] == '}' {
		s.i++
		s.out = append(s.out, '}')
		if s.decode {
			return map[string]any{}, true
		}
		return nil, true
	}
	for {
		s.space()
		if s.i >= len(s.src) || s.src[s.i] != '"' {
			return s.syntax("a member name (a string) is expected")
		}
		before := len(s.out)
		if len(s.members) > base {
			s.out = append(s.out, ',')
		}
		start := len(s.out)
		name, ok := s.str(true)
		if !ok {
			return nil, false
		}
		s.space()
		if s.i >= len(s.src) || s.src[s.i] != ':' {
			return s.syntax("':' is expected after a member name")
		}
		s.i++
		s.out = append(s.out, ':')
		s.inPayload = depth == 1 && name == "payload"
		v, ok := s.value(depth)
		s.inPayload = false
		if !ok {
			return nil, false
		}
		switch {
		case depth == 1 && slices.Contains(s.drop, name):
			s.out = s.out[:before]
		default:
			if n := len(s.members); n > base {
				switch c := s.compare(s.members[n-1].name, name); {
				case c == 0 && s.strict && !s.decode:
					return s.duplicate(name)
				case c >= 0:
					sorted = false
				}
			}
			s.members = append(s.members, member{name: name, start: start, end: len(s.out), value: v})
		}
		s.space()
		if s.i >= len(s.src) {
			return s.syntax("")
		}
		switch s.src[s.i] {
		case ',':
			s.i++
			continue
		case '}':
			s.i++
		default:
			return s.syntax("',' or '}' is expected after a member")
		}
		break
	}
	ms := s.members[base:]
	var m map[string]any
	if s.decode {
		// Made once the members are counted: growing it member by member cost as much again.
		m = make(map[string]any, len(ms))
		for _, mb := range ms {
			if _, dup := m[mb.name]; dup && s.strict {
				return s.duplicate(mb.name)
			}
			m[mb.name] = mb.value // a repeated name (not strict): the last wins
		}
	}
	if !s.jcs && !s.differs && len(ms) > 1 {
		// UTF-16 order differs from byte order only for characters beyond U+FFFF.
		for _, mb := range ms {
			if hasAstral(mb.name) {
				s.differs = true
				break
			}
		}
	}
	s.ends = s.ends[:0]
	if !sorted {
		if dup, twice := s.reorder(open, ms); twice && s.strict && !s.decode {
			// Without the decoded map, the sort finds the repeated name.
			return s.duplicate(dup)
		}
	} else if laidOut {
		for _, mb := range ms {
			s.ends = append(s.ends, int32(mb.end-open+1))
		}
	}
	s.out = append(s.out, '}')
	switch {
	case !laidOut:
	case depth == 2:
		s.payload = append(s.payload[:0], s.ends...)
	default:
		// One allocation for both lists; the payload's, if any, was recorded before.
		all := make([]int32, len(s.ends)+len(s.payload))
		n := copy(all, s.ends)
		copy(all[n:], s.payload)
		s.layout = Layout{members: all[:n:n], payload: all[n:]}
	}
	return m, true
}

func (s *scanner) duplicate(name string) (any, bool) {
	return s.fail(fmt.Sprintf("holds the member name %q twice in one object; I-JSON allows each name once", clip(name)))
}

// reorder writes the members ms of the object whose text begins at out[open:] again, sorted
// (and where each ends in s.ends), and keeps the last of a repeated name, which it returns with twice set (strict scans that
// decode refused it before; the name may be empty). It sorts their indexes, not the members:
// moving those (pointers) cost write barriers.
func (s *scanner) reorder(open int, ms []member) (repeated string, twice bool) {
	order := s.order[:0]
	for k := range ms {
		order = append(order, int32(k))
	}
	slices.SortStableFunc(order, func(a, b int32) int { return s.compare(ms[a].name, ms[b].name) })
	s.order = order
	s.tmp = append(s.tmp[:0], s.out[open:]...)
	s.out = s.out[:open]
	for k, j := range order {
		if k+1 < len(order) && ms[order[k+1]].name == ms[j].name {
			repeated, twice = ms[j].name, true
			continue // a later one wins
		}
		if len(s.out) > open {
			s.out = append(s.out, ',')
		}
		s.out = append(s.out, s.tmp[ms[j].start-open:ms[j].end-open]...)
		s.ends = append(s.ends, int32(len(s.out)-open+1))
	}
	return repeated, twice
}

// compare orders member names: RFC 8785's UTF-16 order, or the stored form's byte order.
func (s *scanner) compare(a, b string) int {
	if s.jcs {
		return compareUTF16(a, b)
	}
	return strings.Compare(a, b)
}

func hasAstral(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0xF0 {
			return true
		}
	}
	return false
}

func (s *scanner) array(depth int) (any, bool) {
	if !s.enter(depth) {
		return nil, false
	}
	s.i++ // [
	var a []any
	if s.decode {
		a = []any{}
	}
	s.out = append(s.out, '[')
	s.space()
	if s.i < len(s.src) && s.src[s.i] == ']' {
		s.i++
		s.out = append(s.out, ']')
		return a, true
	}
	for first := true; ; first = false {
		if !first {
			s.out = append(s.out, ',')
		}
		v, ok := s.value(depth)
		if !ok {
			return nil, false
		}
		if s.decode {
			a = append(a, v)
		}
		s.space()
		if s.i >= len(s.src) {
			return s.syntax("")
		}
		switch s.src[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			s.out = append(s.out, ']')
			return a, true
		default:
			return s.syntax("',' or ']' is expected after an element")
		}
	}
}

// number reads a number of JSON's grammar, -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, and
// writes its canonical spelling.
func (s *scanner) number() (any, bool) {
	start := s.i
	if s.src[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.src) && s.src[s.i] == '0':
		s.i++
	case !s.digits():
		return s.syntax("a number needs digits")
	}
	integer := true
	if s.i < len(s.src) && s.src[s.i] == '.' {
		s.i++
		integer = false
		if !s.digits() {
			return s.syntax("a number needs digits after '.'")
		}
	}
	if s.i < len(s.src) && (s.src[s.i] == 'e' || s.src[s.i] == 'E') {
		s.i++
		integer = false
		if s.i < len(s.src) && (s.src[s.i] == '+' || s.src[s.i] == '-') {
			s.i++
		}
		if !s.digits() {
			return s.syntax("a number needs digits in its exponent")
		}
	}
	text := s.src[start:s.i]
	var v any
	if s.decode {
		v = json.Number(text)
	}
	// Up to 15 digits an integer is exact as a double, and every form spells it as it is.
	if integer && len(text) <= 15 {
		if text == "-0" {
			text, s.respelled = "0", true
		}
		s.out = append(s.out, text...)
		return v, true
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsInf(f, 0) {
		if s.strict {
			return s.fail(fmt.Sprintf("holds the number %s, larger than an IEEE double holds; I-JSON refuses it", clip(text)))
		}
		return s.fail(fmt.Sprintf("JSON number %s is outside the IEEE 754 double range RFC 8785 can encode", clip(text)))
	}
	if s.strict && f == 0 && !isZero(text) {
		return s.fail(fmt.Sprintf("holds the number %s, so small that an IEEE double holds only 0; I-JSON refuses it", clip(text)))
	}
	if s.jcs {
		s.out = append(s.out, FormatNumber(f)...)
		return v, true
	}
	// The stored form: an integer exactly as sent (without the sign of -0), any other number
	// as the shortest 'g' spelling of its double.
	mark := len(s.out)
	switch {
	case integer:
		s.out = append(s.out, text...)
	case f == 0:
		s.out = append(s.out, '0')
	default:
		s.out = strconv.AppendFloat(s.out, f, 'g', -1, 64)
	}
	if !s.respelled && string(s.out[mark:]) != text {
		s.respelled = true
	}
	if !s.differs && string(s.out[mark:]) != FormatNumber(f) {
		s.differs = true
	}
	return v, true
}

func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.src) && s.src[s.i] >= '0' && s.src[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// isZero reports whether a number's digits before its exponent are all zero.
func isZero(text string) bool {
	for _, c := range []byte(text) {
		switch {
		case c == 'e' || c == 'E':
			return true
		case c >= '1' && c <= '9':
			return false
		}
	}
	return true
}

// plain marks the bytes a string holds that are written as they are: printable ASCII but '"'
// and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// PlainRun returns where the run of bytes of text[i:] that a JSON string holds as they are
// ends: at the first '"', '\\', control character or byte of a multi-byte UTF-8 sequence (or
// the end). It tests eight bytes at a time: strings are most of what the write path reads.
func PlainRun(text string, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(text); i += 8 {
		x := uint64(text[i]) | uint64(text[i+1])<<8 | uint64(text[i+2])<<16 | uint64(text[i+3])<<24 |
			uint64(text[i+4])<<32 | uint64(text[i+5])<<40 | uint64(text[i+6])<<48 | uint64(text[i+7])<<56
		// With no byte's high bit set, x-0x20… borrows into a byte's high bit exactly when some
		// byte is below 0x20, and (x^c…)-0x01… when some byte is c.
		if (x|(x-0x20*ones)|((x^'"'*ones)-ones)|((x^'\\'*ones)-ones))&highs != 0 {
			break
		}
	}
	for i < len(text) && plain[text[i]] {
		i++
	}
	return i
}

// str reads the string at s.i (its opening quote) and writes it with RFC 8785's escapes. When
// want is set it returns the string's text: a substring of src when it holds no escape.
func (s *scanner) str(want bool) (string, bool) {
	s.i++
	start := s.i
	s.out = append(s.out, '"')
	var text []byte // the text once an escape was met
	escaped := false
	for {
		run := s.i
		s.i = PlainRun(s.src, s.i)
		s.out = append(s.out, s.src[run:s.i]...)
		if escaped && want {
			text = append(text, s.src[run:s.i]...)
		}
		if s.i >= len(s.src) {
			s.syntax("")
			return "", false
		}
		switch c := s.src[s.i]; {
		case c == '"':
			s.i++
			s.out = append(s.out, '"')
			switch {
			case !want:
				return "", true
			case escaped:
				return string(text), true
			}
			return s.src[start : s.i-1], true
		case c == '\\':
			if !escaped && want {
				text = append(make([]byte, 0, s.i-start+16), s.src[start:s.i]...)
			}
			escaped = true
			r, ok := s.escape()
			if !ok {
				return "", false
			}
			if r == 0 && s.strict {
				s.fail("holds U+0000 in a string, which cannot be stored")
				return "", false
			}
			s.out = appendRune(s.out, r)
			if want {
				text = utf8.AppendRune(text, r)
			}
		case c < 0x20:
			s.syntax("a control character in a string must be escaped")
			return "", false
		default: // >= 0x80
			r, size := utf8.DecodeRuneInString(s.src[s.i:])
			if r == utf8.RuneError && size <= 1 {
				s.fail("is not valid UTF-8")
				return "", false
			}
			s.out = append(s.out, s.src[s.i:s.i+size]...)
			if escaped && want {
				text = append(text, s.src[s.i:s.i+size]...)
			}
			s.i += size
		}
	}
}

// escape reads the escape at s.i (its backslash) and returns the character it stands for. A
// lone surrogate is refused by a strict scan, and read as U+FFFD otherwise.
func (s *scanner) escape() (rune, bool) {
	if s.i+1 >= len(s.src) {
		s.syntax("")
		return 0, false
	}
	s.i += 2
	switch c := s.src[s.i-1]; c {
	case '"', '\\', '/':
		return rune(c), true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	case 'u':
		r, ok := s.hex()
		if !ok {
			return 0, false
		}
		if utf16.IsSurrogate(r) {
			if r < 0xDC00 && strings.HasPrefix(s.src[s.i:], `\u`) {
				at := s.i
				s.i += 2
				lo, ok := s.hex()
				if !ok {
					return 0, false
				}
				if lo >= 0xDC00 && lo < 0xE000 {
					return utf16.DecodeRune(r, lo), true
				}
				s.i = at
			}
			if s.strict {
				s.fail(fmt.Sprintf("holds the escape \\u%04X, half of a UTF-16 surrogate pair without its other half; I-JSON refuses it", r))
				return 0, false
			}
			return utf8.RuneError, true
		}
		return r, true
	}
	s.i -= 2
	s.syntax("an invalid escape")
	return 0, false
}

// hex reads the four hex digits of a \u escape at s.i.
func (s *scanner) hex() (rune, bool) {
	if len(s.src)-s.i < 4 {
		s.syntax("a \\u escape needs four hex digits")
		return 0, false
	}
	var r rune
	for _, c := range []byte(s.src[s.i : s.i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			s.syntax("a \\u escape needs four hex digits")
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	s.i += 4
	return r, true
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

// appendRune appends r as RFC 8785 writes it inside a string.
func appendRune(buf []byte, r rune) []byte {
	if r < 0x20 || r == '"' || r == '\\' {
		return appendEscaped(buf, byte(r))
	}
	return utf8.AppendRune(buf, r)
}

// appendEscaped appends the escape of an ASCII character that RFC 8785 escapes.
func appendEscaped(buf []byte, c byte) []byte {
	const hex = "0123456789abcdef"
	switch c {
	case '"', '\\':
		return append(buf, '\\', c)
	case '\b':
		return append(buf, '\\', 'b')
	case '\t':
		return append(buf, '\\', 't')
	case '\n':
		return append(buf, '\\', 'n')
	case '\f':
		return append(buf, '\\', 'f')
	case '\r':
		return append(buf, '\\', 'r')
	}
	return append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
}

// AppendString appends s as a JSON string with the escapes of RFC 8785 §3.2.2.2: \b \t \n \f
// \r \" \\ and \u00xx for the other control characters; everything else as it is.
func AppendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			buf = appendEscaped(append(buf, s[start:i]...), c)
			start = i + 1
		}
	}
	return append(append(buf, s[start:]...), '"')
}

// AppendCanonicalValue appends the RFC 8785 form of a decoded JSON value: maps, slices,
// strings, json.Number (encoding/json's, also segmentio's), float64, bool and nil.
func AppendCanonicalValue(buf []byte, v any) ([]byte, error) { return appendValue(buf, v) }

func appendValue(buf []byte, v any) ([]byte, error) {
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, compareUTF16)
		buf = append(buf, '{')
		for i, k := range keys {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = AppendString(buf, k)
			buf = append(buf, ':')
			var err error
			if buf, err = appendValue(buf, t[k]); err != nil {
				return nil, err
			}
		}
		return append(buf, '}'), nil
	case []any:
		buf = append(buf, '[')
		for i, e := range t {
			if i > 0 {
				buf = append(buf, ',')
			}
			var err error
			if buf, err = appendValue(buf, e); err != nil {
				return nil, err
			}
		}
		return append(buf, ']'), nil
	case string:
		return AppendString(buf, t), nil
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, fmt.Errorf("JSON number %s is outside the IEEE 754 double range RFC 8785 can encode", clip(string(t)))
		}
		return append(buf, FormatNumber(f)...), nil
	case float64:
		if math.IsInf(t, 0) || math.IsNaN(t) {
			return nil, fmt.Errorf("JSON number %v has no RFC 8785 form", t)
		}
		return append(buf, FormatNumber(t)...), nil
	case bool:
		return strconv.AppendBool(buf, t), nil
	case nil:
		return append(buf, "null"...), nil
	}
	return nil, fmt.Errorf("JSON value of type %T", v)
}

// compareUTF16 orders strings by their UTF-16 code units, as RFC 8785 §3.2.3 requires (it
// differs from byte order only for characters above U+FFFF against U+E000..U+FFFF).
func compareUTF16(a, b string) int {
	if !hasAstral(a) && !hasAstral(b) {
		return strings.Compare(a, b)
	}
	return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
}

// FormatNumber is ECMAScript's Number.prototype.toString for a finite double.
func FormatNumber(f float64) string {
	if f == 0 {
		return "0" // also -0
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	// The shortest digits that round-trip, and the decimal exponent n with value = 0.d1d2... × 10^n.
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	k, n := len(digits), x+1
	var out string
	switch {
	case k <= n && n <= 21:
		out = digits + strings.Repeat("0", n-k)
	case 0 < n && n <= 21:
		out = digits[:n] + "." + digits[n:]
	case -6 < n && n <= 0:
		out = "0." + strings.Repeat("0", -n) + digits
	default:
		exponent := n - 1
		es := "+"
		if exponent < 0 {
			es, exponent = "-", -exponent
		}
		if k == 1 {
			out = digits + "e" + es + strconv.Itoa(exponent)
		} else {
			out = digits[:1] + "." + digits[1:] + "e" + es + strconv.Itoa(exponent)
		}
	}
	return sign + out
}
