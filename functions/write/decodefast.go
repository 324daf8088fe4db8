package write

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/ijson"
	"github.com/auditstore/auditstore/shared/integrity"
)

// The plain case of a JSON event, or a batch of them, is decoded here without reflection: one
// scan of the body that fills an Input whose string fields point into one copy of the body,
// with one allocation per event and event_data read once (integrity.ParseDataIn). strictParse
// took ~25 allocations per event (a string and a pointer per field). Anything out of the
// plain way (an escape in a field, an unknown, repeated or differently cased member, a number
// that is not a plain integer, invalid JSON or UTF-8) makes it give up, and strictParse then
// decodes the body as before, or decodeErrors names every problem:
// TestFastInput_AsStrictParse and FuzzFastInput hold the two to the same result.
//
// What the scan takes is an I-JSON text within checkJSON's bounds (UTF-8, each name once,
// no lone surrogate, numbers a double holds, event_data nested at most MaxDataDepth levels),
// so a body it takes skips checkJSON's separate pass; the fuzz tests hold it to that too.

// inputSlab holds an Input and the values its pointer fields point to, in one allocation.
type inputSlab struct {
	in   audit.Input
	strs [23]string
	ints [2]int64
	flag bool
}

type inputScanner struct {
	src  string // the body, copied once
	raw  []byte // the body itself: event_data is a slice of it
	i    int
	slab *inputSlab
	next int    // next free string of slab.strs
	seen uint32 // the members of the object read so far, by bit
}

// once marks the member with bit seen in the object being read, or reports false when it was
// already: I-JSON refuses a name twice, and so does the scan, for checkJSON to name it.
func (s *inputScanner) once(bit uint) bool {
	if s.seen&(1<<bit) != 0 {
		return false
	}
	s.seen |= 1 << bit
	return true
}

// fastInput decodes one event object, or reports false.
func fastInput(raw []byte) (*audit.Input, bool) {
	s := inputScanner{src: string(raw), raw: raw}
	s.space()
	in, ok := s.object()
	if !ok {
		return nil, false
	}
	s.space()
	return in, s.i == len(s.src)
}

// fastBatch decodes a JSON array of 1..MaxBatch event objects, or reports false.
func fastBatch(raw []byte) ([]*audit.Input, bool) {
	s := inputScanner{src: string(raw), raw: raw}
	s.space()
	if !s.consume('[') {
		return nil, false
	}
	var inputs []*audit.Input
	for {
		s.space()
		in, ok := s.object()
		if !ok {
			return nil, false
		}
		inputs = append(inputs, in)
		s.space()
		if s.consume(']') {
			break
		}
		if !s.consume(',') {
			return nil, false
		}
	}
	s.space()
	if s.i != len(s.src) || len(inputs) > MaxBatch {
		return nil, false
	}
	return inputs, true
}

func (s *inputScanner) space() { s.i = ijson.SkipSpace(s.src, s.i) }

func (s *inputScanner) consume(c byte) bool {
	if s.i < len(s.src) && s.src[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *inputScanner) object() (*audit.Input, bool) {
	if !s.consume('{') {
		return nil, false
	}
	s.slab, s.next, s.seen = &inputSlab{}, 0, 0
	in := &s.slab.in
	s.space()
	if s.consume('}') {
		return in, true
	}
	for {
		s.space()
		name, ok := s.plainString()
		if !ok {
			return nil, false
		}
		s.space()
		if !s.consume(':') {
			return nil, false
		}
		s.space()
		if !s.member(in, name) {
			return nil, false
		}
		s.space()
		if s.consume('}') {
			return in, true
		}
		if !s.consume(',') {
			return nil, false
		}
	}
}

// member decodes the value of the member name into in.
func (s *inputScanner) member(in *audit.Input, name string) bool {
	var field **string
	var bit uint
	switch name {
	case "event_id":
		field, bit = &in.EventID, 0
	case "version":
		field, bit = &in.Version, 1
	case "event_timestamp":
		field, bit = &in.EventTimestamp, 2
	case "event_type":
		field, bit = &in.EventType, 3
	case "event_category":
		field, bit = &in.EventCategory, 4
	case "event_action":
		field, bit = &in.EventAction, 5
	case "event_outcome":
		field, bit = &in.EventOutcome, 6
	case "correlation_id":
		field, bit = &in.CorrelationID, 7
	case "actor_type":
		field, bit = &in.ActorType, 8
	case "actor_id":
		field, bit = &in.ActorID, 9
	case "actor_ip":
		field, bit = &in.ActorIP, 10
	case "resource_type":
		field, bit = &in.ResourceType, 11
	case "resource_id":
		field, bit = &in.ResourceID, 12
	case "resource_name":
		field, bit = &in.ResourceName, 13
	case "parent_event_id":
		field, bit = &in.ParentEventID, 14
	case "trace_id":
		field, bit = &in.TraceID, 15
	case "span_id":
		field, bit = &in.SpanID, 16
	case "namespace":
		field, bit = &in.Namespace, 17
	case "cluster_id":
		field, bit = &in.ClusterID, 18
	case "parent_event_date":
		field, bit = &in.ParentEventDate, 19
	case "severity":
		field, bit = &in.Severity, 20
	case "error_code":
		field, bit = &in.ErrorCode, 21
	case "error_message":
		field, bit = &in.ErrorMessage, 22
	case "duration_ms":
		return s.once(23) && s.integer(&in.DurationMS, 0)
	case "retention_days":
		return s.once(24) && s.integer(&in.RetentionDays, 1)
	case "is_sensitive":
		switch {
		case !s.once(25):
			return false
		case s.literal("null"):
			in.IsSensitive = nil
		case s.literal("true"):
			s.slab.flag = true
			in.IsSensitive = &s.slab.flag
		case s.literal("false"):
			s.slab.flag = false
			in.IsSensitive = &s.slab.flag
		default:
			return false
		}
		return true
	case "event_data":
		if !s.once(26) {
			return false
		}
		if start := s.i; s.literal("null") {
			in.EventData = json.RawMessage(s.raw[start:s.i:s.i])
			return true
		}
		return s.data(in)
	default:
		return false // unknown, or a name in another case: strictParse refuses it
	}
	if !s.once(bit) {
		return false
	}
	if s.literal("null") {
		*field = nil
		return true
	}
	v, ok := s.plainString()
	if !ok || s.next == len(s.slab.strs) {
		return false
	}
	p := &s.slab.strs[s.next]
	s.next++
	*p = v
	*field = p
	return true
}

// data reads the event_data object at the scan's position into in: checked, written in its
// canonical forms and decoded here, in the body's one pass, so Prepare takes the result
// instead of reading it again. Whatever is wrong with it is left to the slower decoders and
// Prepare to name.
func (s *inputScanner) data(in *audit.Input) bool {
	start := s.i
	if s.i >= len(s.src) || s.src[s.i] != '{' {
		return false
	}
	d, end, err := integrity.ParseDataIn(s.src, s.i, audit.MaxDataDepth, audit.MaxDataBytes)
	if err != nil {
		return false
	}
	s.i = end
	in.SetData(json.RawMessage(s.raw[start:end:end]), d)
	return true
}

// fastData reads a whole body that is one event_data object (a binary-mode CloudEvent's
// data) into in, or reports false. Like fastInput it checks what checkJSON would, which the
// body then skips.
func fastData(in *audit.Input, raw []byte) bool {
	s := inputScanner{src: string(raw), raw: raw}
	s.space()
	if !s.data(in) {
		return false
	}
	s.space()
	return s.i == len(s.src)
}

// integer decodes a plain integer (or null) into *field, using the slab's int k.
func (s *inputScanner) integer(field **int64, k int) bool {
	if s.literal("null") {
		*field = nil
		return true
	}
	start := s.i
	s.consume('-')
	digits := s.i
	for s.i < len(s.src) && s.src[s.i] >= '0' && s.src[s.i] <= '9' {
		s.i++
	}
	text := s.src[start:s.i]
	if s.i == digits || (s.src[digits] == '0' && s.i-digits > 1) || (s.i < len(s.src) && (s.src[s.i] == '.' || s.src[s.i] == 'e' || s.src[s.i] == 'E')) {
		return false
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return false
	}
	s.slab.ints[k] = v
	*field = &s.slab.ints[k]
	return true
}

func (s *inputScanner) literal(lit string) bool {
	if len(s.src)-s.i >= len(lit) && s.src[s.i:s.i+len(lit)] == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// plainString reads a string without escapes or control characters, in valid UTF-8, a
// substring of src.
func (s *inputScanner) plainString() (string, bool) {
	if !s.consume('"') {
		return "", false
	}
	start := s.i
	ascii := true
	for s.i < len(s.src) {
		if s.i = integrity.PlainRun(s.src, s.i); s.i == len(s.src) {
			break
		}
		switch c := s.src[s.i]; {
		case c == '"':
			v := s.src[start:s.i]
			s.i++
			return v, ascii || utf8.ValidString(v)
		case c == '\\' || c < 0x20:
			return "", false
		case c >= 0x80:
			ascii = false
		}
		s.i++
	}
	return "", false
}
