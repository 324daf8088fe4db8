// Package ijson checks that a JSON text is an I-JSON message (RFC 7493) within explicit bounds,
// in one pass whose cost is linear in the text's size whatever its shape: valid UTF-8, no
// duplicate member names, no lone surrogate escapes, every number a finite IEEE double that does
// not underflow to zero, and objects and arrays nested no deeper than a limit.
//
// It decodes nothing. Every JSON body auditstore takes from the network is checked here first,
// so the decoders that run after it only ever see input of bounded depth: a body nested 40,000
// levels deep is refused after reading it once, instead of after decoders that cost time
// quadratic in its depth.
//
// The package imports nothing of auditstore, so clients and verifiers may use it.
package ijson

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// Kind tells what an Error is about.
type Kind int

// The kinds of Error. The first two end the check: what follows them was not read.
const (
	// Syntax: not JSON at all (RFC 8259), or data after the value.
	Syntax Kind = iota + 1
	// Depth: objects and arrays nested deeper than Limits.MaxDepth.
	Depth
	// Duplicate: a member name that its object already has.
	Duplicate
	// Surrogate: a \u escape of a UTF-16 surrogate that is not part of a pair.
	Surrogate
	// Number: a number no IEEE double holds (too large, or so small it becomes zero).
	Number
)

// Limits bound a check.
type Limits struct {
	// MaxDepth is the deepest nesting of objects and arrays accepted; the outermost object or
	// array is level 1. Zero or less means 64.
	MaxDepth int
	// MaxErrors bounds how many errors are reported (the check stops after that many). Zero
	// or less means 20.
	MaxErrors int
}

// Error is one violation, where it is.
type Error struct {
	Kind Kind
	// Offset is the byte offset in the text where the violation was found.
	Offset int
	// Path leads from the outermost value to the offending one: member names and array
	// indexes (Index >= 0).
	Path []PathElem
	// Message says what is wrong, for people.
	Message string
}

// PathElem is one step of a path: a member name, or an array index when Index >= 0.
type PathElem struct {
	Name  string
	Index int
}

func (e *Error) Error() string {
	if p := e.Where(); p != "" {
		return p + ": " + e.Message
	}
	return e.Message
}

// Fatal reports whether the check ended at this error (syntax, depth).
func (e *Error) Fatal() bool { return e.Kind == Syntax || e.Kind == Depth }

// Where writes the path as `a.b[3].c` (empty for the outermost value).
func (e *Error) Where() string { return FormatPath(e.Path) }

// FormatPath writes a path as `a.b[3].c`.
func FormatPath(path []PathElem) string {
	var b strings.Builder
	for i, p := range path {
		if p.Index >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(p.Index))
			b.WriteByte(']')
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p.Name)
	}
	return b.String()
}

// Check checks text and returns every violation found, in the order found (nil: text is an
// I-JSON message within the limits). The check stops at the first Syntax or Depth error and
// after Limits.MaxErrors errors.
func Check(text []byte, lim Limits) []*Error {
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = 64
	}
	if lim.MaxErrors <= 0 {
		lim.MaxErrors = 20
	}
	s := scanner{lim: lim}
	if len(text) > 0 {
		// A view of text, never retained past Check: names and paths that outlive it are
		// copied when an error is made.
		s.src = unsafe.String(&text[0], len(text))
	}
	s.space()
	if s.i == len(s.src) {
		s.fail(Syntax, "is empty; a JSON value is expected")
		return s.errs
	}
	if s.value(0) {
		s.space()
		if s.i != len(s.src) {
			s.fail(Syntax, "has data after the JSON value")
		}
	}
	return s.errs
}

// FirstFatal returns the error that ended a check, if one did.
func FirstFatal(errs []*Error) *Error {
	for _, e := range errs {
		if e.Fatal() {
			return e
		}
	}
	return nil
}

// scanner walks the text once. Each container on the way down keeps one frame: the member
// name or index it is at (for paths) and, for objects, where its names start in names.
type scanner struct {
	src    string
	i      int
	lim    Limits
	errs   []*Error
	frames []frame
	names  []string // member names of the open objects, outermost first
	stop   bool     // a fatal error or MaxErrors reached
}

type frame struct {
	name       string
	index      int // -1 in objects
	namesStart int
	set        map[string]struct{} // an object's names once it has many
}

// manyNames is the member count from which an object's names are looked up in a map instead
// of compared one by one, so duplicate detection stays linear in the number of members.
const manyNames = 16

func (s *scanner) fail(k Kind, msg string) {
	path := make([]PathElem, 0, len(s.frames))
	for _, f := range s.frames {
		if f.index < 0 && f.name == "" {
			break // an object not yet at a member
		}
		path = append(path, PathElem{Name: strings.Clone(f.name), Index: f.index})
	}
	s.errs = append(s.errs, &Error{Kind: k, Offset: s.i, Path: path, Message: msg})
	if k == Syntax || k == Depth || len(s.errs) >= s.lim.MaxErrors {
		s.stop = true
	}
}

func (s *scanner) space() { s.i = SkipSpace(s.src, s.i) }

// SkipSpace returns the index of the first byte at or after i that is not JSON white space.
func SkipSpace(src string, i int) int {
	for i < len(src) {
		switch src[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// value checks the value at s.i inside depth open containers; false when the check stops.
func (s *scanner) value(depth int) bool {
	if s.i >= len(s.src) {
		s.fail(Syntax, "ends where a value is expected")
		return false
	}
	switch c := s.src[s.i]; {
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		_, ok := s.str(false)
		return ok && !s.stop
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	s.fail(Syntax, "is not valid JSON: unexpected "+quoteByte(s.src[s.i])+" where a value is expected")
	return false
}

func (s *scanner) enter(depth int) bool {
	if depth > s.lim.MaxDepth {
		s.fail(Depth, "nests objects and arrays deeper than "+strconv.Itoa(s.lim.MaxDepth)+" levels")
		return false
	}
	return true
}

func (s *scanner) object(depth int) bool {
	if !s.enter(depth) {
		return false
	}
	s.i++ // {
	s.frames = append(s.frames, frame{index: -1, namesStart: len(s.names)})
	f := len(s.frames) - 1
	defer func() {
		s.names = s.names[:s.frames[f].namesStart]
		s.frames = s.frames[:f]
	}()
	s.space()
	if s.i < len(s.src) && s.src[s.i] == '}' {
		s.i++
		return true
	}
	for {
		s.frames[f].name = ""
		s.space()
		if s.i >= len(s.src) || s.src[s.i] != '"' {
			s.fail(Syntax, "is not valid JSON: a member name (a string) is expected")
			return false
		}
		at := s.i
		name, ok := s.str(true)
		if !ok {
			return false
		}
		if s.seen(f, name) {
			s.frames[f].name = name
			i := s.i
			s.i = at
			s.fail(Duplicate, "appears more than once in its object; I-JSON allows each member name once")
			s.i = i
			if s.stop {
				return false
			}
		}
		s.frames[f].name = name
		s.space()
		if s.i >= len(s.src) || s.src[s.i] != ':' {
			s.fail(Syntax, "is not valid JSON: ':' is expected after a member name")
			return false
		}
		s.i++
		s.space()
		if more, ok := s.member(depth, '}'); !more {
			return ok
		}
	}
}

// seen records name as a member of frame f's object and reports whether it was already one.
func (s *scanner) seen(f int, name string) bool {
	fr := &s.frames[f]
	if fr.set != nil {
		if _, dup := fr.set[name]; dup {
			return true
		}
		fr.set[name] = struct{}{}
		return false
	}
	names := s.names[fr.namesStart:]
	for _, n := range names {
		if n == name {
			return true
		}
	}
	if len(names)+1 >= manyNames {
		fr.set = make(map[string]struct{}, 2*manyNames)
		for _, n := range names {
			fr.set[n] = struct{}{}
		}
		fr.set[name] = struct{}{}
		return false
	}
	s.names = append(s.names, name)
	return false
}

func (s *scanner) array(depth int) bool {
	if !s.enter(depth) {
		return false
	}
	s.i++ // [
	s.frames = append(s.frames, frame{index: 0})
	f := len(s.frames) - 1
	defer func() { s.frames = s.frames[:f] }()
	s.space()
	if s.i < len(s.src) && s.src[s.i] == ']' {
		s.i++
		return true
	}
	for {
		s.space()
		if more, ok := s.member(depth, ']'); !more {
			return ok
		}
		s.frames[f].index++
	}
}

// member checks a member's value or an element, and what follows it in a container closed by
// close: more when a ',' follows, else whether the container closed well.
func (s *scanner) member(depth int, close byte) (more, ok bool) {
	if !s.value(depth) {
		return false, false
	}
	s.space()
	if s.i < len(s.src) {
		switch s.src[s.i] {
		case ',':
			s.i++
			return true, true
		case close:
			s.i++
			return false, true
		}
	}
	s.fail(Syntax, "is not valid JSON: ',' or '"+string(close)+"' is expected after a value in a container")
	return false, false
}

func (s *scanner) literal(word string) bool {
	if strings.HasPrefix(s.src[s.i:], word) {
		s.i += len(word)
		return true
	}
	s.fail(Syntax, "is not valid JSON: unexpected "+quoteByte(s.src[s.i])+" where a value is expected")
	return false
}

// plain marks the bytes a string may hold as they are: printable ASCII but '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str checks the string at s.i (at its opening quote). A member name (name true) is returned
// unescaped, to compare it with its object's other names; a value's text is not kept.
func (s *scanner) str(name bool) (string, bool) {
	start := s.i + 1
	i := start
	var unescaped []byte // a name's text once it had an escape
	for {
		for i < len(s.src) && plain[s.src[i]] {
			i++
		}
		if i >= len(s.src) {
			s.i = i
			s.fail(Syntax, "is not valid JSON: a string is not closed")
			return "", false
		}
		switch c := s.src[i]; {
		case c == '"':
			s.i = i + 1
			if !name {
				return "", true
			}
			if unescaped != nil {
				return string(unescaped), true
			}
			return s.src[start:i], true
		case c == '\\':
			if name && unescaped == nil {
				unescaped = append(make([]byte, 0, i-start+16), s.src[start:i]...)
			}
			n, r, ok := s.escape(i)
			if !ok {
				return "", false
			}
			if name {
				unescaped = utf8.AppendRune(unescaped, r)
			}
			i = n
			continue
		case c < 0x20:
			s.i = i
			s.fail(Syntax, "is not valid JSON: a string holds a control character (U+"+hex4(rune(c))+") that must be escaped")
			return "", false
		default: // >= 0x80
			r, size := utf8.DecodeRuneInString(s.src[i:])
			if r == utf8.RuneError && size <= 1 {
				s.i = i
				s.fail(Syntax, "is not valid UTF-8")
				return "", false
			}
			if unescaped != nil {
				unescaped = append(unescaped, s.src[i:i+size]...)
			}
			i += size
			continue
		}
	}
}

// shortEscapes maps the letter of each two-character escape to the character it stands for.
var shortEscapes = [256]rune{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

// escape reads the escape at i (its backslash): where the string goes on, and the character.
// A lone surrogate is reported and read as U+FFFD, so the check goes on.
func (s *scanner) escape(i int) (int, rune, bool) {
	if i+1 >= len(s.src) {
		s.i = i
		s.fail(Syntax, "is not valid JSON: a string is not closed")
		return 0, 0, false
	}
	if r := shortEscapes[s.src[i+1]]; r != 0 {
		return i + 2, r, true
	}
	switch s.src[i+1] {
	case 'u':
		r, ok := s.hex(i)
		if !ok {
			return 0, 0, false
		}
		switch {
		case r >= 0xD800 && r < 0xDC00:
			if i+7 < len(s.src) && s.src[i+6] == '\\' && s.src[i+7] == 'u' {
				lo, ok := s.hex(i + 6)
				if !ok {
					return 0, 0, false
				}
				if lo >= 0xDC00 && lo < 0xE000 {
					return i + 12, 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00), true
				}
			}
			return s.loneSurrogate(i, r)
		case r >= 0xDC00 && r < 0xE000:
			return s.loneSurrogate(i, r)
		}
		return i + 6, r, true
	}
	s.i = i
	s.fail(Syntax, "is not valid JSON: "+quoteByte(s.src[i+1])+" is not an escape")
	return 0, 0, false
}

func (s *scanner) loneSurrogate(i int, r rune) (int, rune, bool) {
	at := s.i
	s.i = i
	s.fail(Surrogate, "holds the escape \\u"+hex4(r)+", half of a UTF-16 surrogate pair without its other half; I-JSON refuses it")
	s.i = at
	return i + 6, utf8.RuneError, !s.stop
}

// hex reads the four hex digits of the \u escape at i.
func (s *scanner) hex(i int) (rune, bool) {
	if i+6 > len(s.src) {
		s.i = i
		s.fail(Syntax, "is not valid JSON: a \\u escape needs four hex digits")
		return 0, false
	}
	var r rune
	for _, c := range []byte(s.src[i+2 : i+6]) {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			s.i = i
			s.fail(Syntax, "is not valid JSON: a \\u escape needs four hex digits")
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

// number checks the number at s.i: its grammar, and that a double holds it. A plain integer
// or decimal of at most 20 characters always fits; anything else is parsed.
func (s *scanner) number() bool {
	start := s.i
	i := start
	if s.src[i] == '-' {
		i++
	}
	digits := func() bool {
		j := i
		for i < len(s.src) && s.src[i] >= '0' && s.src[i] <= '9' {
			i++
		}
		return i > j
	}
	switch {
	case i < len(s.src) && s.src[i] == '0':
		i++
	case !digits():
		s.i = i
		s.fail(Syntax, "is not valid JSON: a number needs digits")
		return false
	}
	exp := false
	if i < len(s.src) && s.src[i] == '.' {
		i++
		if !digits() {
			s.i = i
			s.fail(Syntax, "is not valid JSON: a number needs digits after '.'")
			return false
		}
	}
	if i < len(s.src) && (s.src[i] == 'e' || s.src[i] == 'E') {
		exp = true
		i++
		if i < len(s.src) && (s.src[i] == '+' || s.src[i] == '-') {
			i++
		}
		if !digits() {
			s.i = i
			s.fail(Syntax, "is not valid JSON: a number needs digits in its exponent")
			return false
		}
	}
	s.i = i
	text := s.src[start:i]
	if !exp && len(text) <= 20 {
		return true
	}
	f, err := strconv.ParseFloat(text, 64)
	switch {
	case err != nil || math.IsInf(f, 0):
		s.i = start
		s.fail(Number, "holds the number "+clip(text)+", larger than an IEEE double holds; I-JSON refuses it")
		s.i = i
	case f == 0 && !isZero(text):
		s.i = start
		s.fail(Number, "holds the number "+clip(text)+", so small that an IEEE double holds only 0; I-JSON refuses it")
		s.i = i
	}
	return !s.stop
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

func clip(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return strings.Clone(s)
}

func hex4(r rune) string {
	const digits = "0123456789ABCDEF"
	return string([]byte{digits[r>>12&0xF], digits[r>>8&0xF], digits[r>>4&0xF], digits[r&0xF]})
}

func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7F {
		return "'" + string(rune(c)) + "'"
	}
	return "byte 0x" + strconv.FormatUint(uint64(c), 16)
}
