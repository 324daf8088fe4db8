package audit

import "github.com/auditstore/auditstore/shared/integrity"

// MaxDataBytes is the largest event_data accepted, measured as compact JSON.
const MaxDataBytes = 256 << 10

// MaxDataDepth is the deepest nesting of objects and arrays accepted in event_data, event_data
// itself being level 1.
const MaxDataDepth = 32

// CanonicalJSON returns the canonical compact form of a JSON object: members sorted by key,
// no insignificant white space, numbers in one spelling (1.0, 1 and 1e0 are the same value).
// Two payloads that are equal as JSON values have the same canonical form, so its hash tells
// a retry from a conflict. It refuses what PostgreSQL's jsonb or the contract would refuse:
// a value that is not an I-JSON object, U+0000 in a string, nesting deeper than MaxDataDepth
// and a result larger than MaxDataBytes.
func CanonicalJSON(raw []byte) ([]byte, error) {
	d, err := parseData(raw)
	return d.Stored, err
}

// parseData reads event_data in the one scan that checks it, writes its stored and hashed
// forms and decodes it (integrity.ParseData) within the contract's bounds.
func parseData(raw []byte) (integrity.Data, error) {
	return integrity.ParseData(raw, MaxDataDepth, MaxDataBytes)
}
