package audit

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/auditstore/auditstore/shared/integrity"
)

// checkData validates event_data read (d, from raw) as Prepare does, strict or not, and
// returns the service its envelope names (EnvelopeService). Valid data, the common case, is
// read from its stored form (quickEnvelope); only what that is not sure of is decoded (when d
// is not yet) and checked by validateEnvelope, which names every problem.
func checkData(d integrity.Data, raw []byte, strict bool) (string, []FieldError) {
	if !strict && d.NumbersAsSent {
		if service, ok := quickEnvelope(d.Stored); ok {
			return service, nil
		}
	}
	if d.Value == nil {
		var err error
		if d, err = parseData(raw); err != nil {
			return "", []FieldError{{Field: "event_data", Message: err.Error()}}
		}
	}
	return EnvelopeService(d.Value), validateEnvelope(d.Value, strict)
}

// envelopeMembers are the members of event_data validateEnvelope looks at, in byte order.
var envelopeMembers = [...]string{"attempt", "operation", "payload", "retry_reason", "service", "status", "version"}

// quickEnvelope is validateEnvelope (not strict) of event_data's stored form whose numbers are
// spelled as sent (integrity.Data.NumbersAsSent), with the quick payload validator, and the
// service EnvelopeService names: ok only when the data is certainly valid. It reads the
// members from the bytes, without the decoded maps; anything it is not sure of (a string with
// an escape, a payload the quick validator cannot call valid) is ok false, for validateEnvelope
// to decide.
func quickEnvelope(stored []byte) (service string, ok bool) {
	var vals [len(envelopeMembers)][]byte // each member's value, nil: absent
	if len(stored) < 2 || stored[0] != '{' {
		return "", false
	}
	k := 0 // the next of envelopeMembers not passed
	for i := 1; stored[i] != '}'; {
		name, end, ok := storedString(stored, i)
		if !ok || end >= len(stored) {
			return "", false
		}
		vend, ok := (*quickSchema)(nil).validStored(stored, end+1)
		if !ok || vend >= len(stored) {
			return "", false
		}
		for k < len(envelopeMembers) && envelopeMembers[k] < string(name) {
			k++
		}
		if k < len(envelopeMembers) && envelopeMembers[k] == string(name) {
			vals[k] = stored[end+1 : vend]
		}
		switch i = vend; stored[i] {
		case ',':
			i++
		case '}':
		default:
			return "", false
		}
	}
	attempt, operation, payload, retryReason, svc, status, version := vals[0], vals[1], vals[2], vals[3], vals[4], vals[5], vals[6]
	if version == nil || svc == nil {
		return "", true // not an envelope: stored as it is
	}
	var text [4][]byte
	for j, v := range [...][]byte{version, svc, operation, status} {
		s, end, ok := storedString(v, 0)
		if !ok || end != len(v) || strings.TrimSpace(string(s)) == "" || len(s) > 255 {
			return "", false
		}
		text[j] = s
	}
	if isNull(payload) {
		payload = nil
	} else if payload[0] != '{' {
		return "", false
	}
	if !isNull(attempt) {
		n, err := strconv.ParseInt(string(attempt), 10, 64)
		if err != nil || n < 1 {
			return "", false
		}
	}
	if !isNull(retryReason) && retryReason[0] != '"' {
		return "", false
	}
	service = string(text[1])
	if v := text[0]; payload != nil && (string(v) == "1" || strings.HasPrefix(string(v), "1.")) {
		if ps, ok := compiledSchemas().payloads[service]; ok && !ps.quick.validPayload(payload) {
			return "", false
		}
	}
	return service, true
}

// isNull reports whether a member's value (nil: absent) is absent or null.
func isNull(v []byte) bool { return v == nil || string(v) == "null" }

// validateEnvelope checks the common event_data envelope (README "Write API") when event_data
// claims to be one, by holding both version and service: version, service, operation and
// status are non-empty strings, payload an object, attempt an integer >= 1, retry_reason a
// string; and the payload against its service's schema when one is registered (strict: with
// the members the service's builder requires, see validatePayload). Any other object is
// stored as it is. schemas/envelope.schema.json says the same in JSON Schema; a test holds
// the two to one verdict.
func validateEnvelope(data map[string]any, strict bool) []FieldError {
	_, hasVersion := data["version"]
	_, hasService := data["service"]
	if !hasVersion || !hasService {
		return nil
	}
	var errs []FieldError
	bad := func(member, format string, args ...any) {
		errs = append(errs, FieldError{Field: "event_data." + member, Message: fmt.Sprintf(format, args...)})
	}
	for _, m := range []string{"version", "service", "operation", "status"} {
		s, ok := data[m].(string)
		switch {
		case data[m] == nil:
			bad(m, "is required in the event_data envelope (version, service, operation, status)")
		case !ok:
			bad(m, "must be a string")
		case strings.TrimSpace(s) == "":
			bad(m, "must not be empty")
		case len(s) > 255:
			bad(m, "is longer than 255 bytes")
		}
	}
	if p, ok := data["payload"]; ok && p != nil {
		if _, isObj := p.(map[string]any); !isObj {
			bad("payload", "must be a JSON object")
		}
	}
	if len(errs) == 0 {
		errs = validatePayload(data["version"].(string), data["service"].(string), data["payload"], strict)
	}
	if a, ok := data["attempt"]; ok && a != nil {
		n, isNum := a.(json.Number)
		v, err := n.Int64()
		if !isNum || err != nil || v < 1 {
			bad("attempt", "must be an integer of 1 or more")
		}
	}
	if r, ok := data["retry_reason"]; ok && r != nil {
		if _, isStr := r.(string); !isStr {
			bad("retry_reason", "must be a string")
		}
	}
	return errs
}
