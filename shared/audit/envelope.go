package audit

import (
	"encoding/json"
	"fmt"
	"strings"
)

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
