package query

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/google/uuid"
)

// csvField is one column of a CSV export: an Event field shown in JSON.
type csvField struct {
	name  string
	index int
	// omitEmpty: the JSON form leaves the field out when it is empty, and its cell is empty.
	omitEmpty bool
}

// csvFields are the columns of a CSV export: the Event's JSON fields in its order, read from
// the type so a field added to Event is exported without a change here.
var csvFields = func() []csvField {
	var out []csvField
	t := reflect.TypeFor[audit.Event]()
	for i := range t.NumField() {
		name, opts, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" || !t.Field(i).IsExported() {
			continue
		}
		out = append(out, csvField{name: name, index: i, omitEmpty: opts == "omitempty"})
	}
	return out
}()

// csvHeader returns the header row.
func csvHeader() []string {
	h := make([]string, len(csvFields))
	for i, f := range csvFields {
		h[i] = f.name
	}
	return h
}

// csvRecord fills rec with e's values: a field the JSON form leaves out is an empty cell, times
// are RFC 3339 in UTC with the stored microseconds, event_data and hashes are as JSON shows them.
func csvRecord(e *audit.Event, rec []string) []string {
	v := reflect.ValueOf(e).Elem()
	rec = rec[:0]
	for _, f := range csvFields {
		field := v.Field(f.index)
		if f.omitEmpty && field.IsZero() {
			rec = append(rec, "")
			continue
		}
		rec = append(rec, defuse(csvValue(field.Interface())))
	}
	return rec
}

func csvValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case *string:
		if v == nil {
			return ""
		}
		return *v
	case uuid.UUID:
		return v.String()
	case *uuid.UUID:
		if v == nil {
			return ""
		}
		return v.String()
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	case int:
		return strconv.Itoa(v)
	case *int64:
		if v == nil {
			return ""
		}
		return strconv.FormatInt(*v, 10)
	case bool:
		return strconv.FormatBool(v)
	case json.RawMessage:
		var b bytes.Buffer
		if json.Compact(&b, v) != nil {
			return string(v)
		}
		return b.String() // as the NDJSON export shows it
	}
	// Any other type is shown as its JSON: a string without its quotes, null as nothing.
	b, err := json.Marshal(v)
	if err != nil || string(b) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		return s
	}
	return string(b)
}

// defuse keeps a spreadsheet from running a cell as a formula (OWASP "CSV injection"): event
// content is written by services and may be attacker-controlled, and auditors open exports
// in spreadsheets. A cell that starts with = + - @ tab or carriage return gets a leading '.
// NDJSON is the export that keeps every value exactly.
func defuse(v string) string {
	if v == "" {
		return v
	}
	switch v[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + v
	}
	return v
}
