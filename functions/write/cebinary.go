package write

import (
	"net/http"
	"strings"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/cloudevents/sdk-go/v2/types"
)

// binaryCloudEvent maps the common binary-mode CloudEvent (ce-specversion 1.0, a JSON body or
// none) to the Input and trace context the SDK's decoding and inputFromCloudEvent give it,
// reading the headers once. It reads each header as the SDK's binding does (each attribute
// through the SDK's own setter rules, each other Ce- header an extension) and declines
// (ok false) whatever it does not map exactly: other spec versions and content types, a
// dataschema, an attribute or extension the SDK would refuse, an event Validate would refuse.
// The SDK then decodes it, and says what is wrong. Decoding through the SDK took an event,
// its extension map, a copy of the body and a parsed URL per request.
func binaryCloudEvent(header http.Header, body []byte) (in *audit.Input, tr traceIDs, errs []audit.FieldError, ok bool) {
	if v := header["Ce-Specversion"]; len(v) == 0 || v[0] != "1.0" {
		return nil, tr, nil, false
	}
	var id, source, typ, subject, ceTime string
	var hasSource, hasTime bool
	var ext ceExtensions
	for k, v := range header {
		if len(v) == 0 {
			return nil, tr, nil, false
		}
		switch k {
		case "Ce-Specversion":
		case "Content-Type":
			// The data content type; only the plain JSON type is taken here (Validate parses
			// others; format.Lookup makes some of them structured).
			if v[0] != "application/json" {
				return nil, tr, nil, false
			}
		case "Ce-Id":
			id = strings.TrimSpace(v[0])
		case "Ce-Source":
			source, hasSource = v[0], true
		case "Ce-Type":
			typ = strings.TrimSpace(v[0])
		case "Ce-Subject":
			subject = strings.TrimSpace(v[0])
		case "Ce-Time":
			ceTime, hasTime = v[0], true
		case "Ce-Dataschema":
			return nil, tr, nil, false
		default:
			if !strings.HasPrefix(k, "Ce-") {
				continue
			}
			if !ext.add(k, v[0]) {
				return nil, tr, nil, false
			}
		}
	}
	if id == "" || typ == "" || !hasSource {
		return nil, tr, nil, false
	}
	// The source is a URI reference; the event says it as the SDK's parsed URL writes it.
	ref := types.ParseURIRef(source)
	if ref == nil {
		return nil, tr, nil, false
	}
	if source = ref.String(); strings.TrimSpace(source) == "" {
		return nil, tr, nil, false
	}
	in = &audit.Input{
		EventType:     &typ,
		CorrelationID: ext.get("correlationid"),
		EventOutcome:  ext.get("outcome"),
		ActorType:     ext.get("actortype"),
		ActorID:       ext.get("actorid"),
		ResourceType:  ext.get("resourcetype"),
		Severity:      ext.get("severity"),
		Namespace:     ext.get("namespace"),
		ClusterID:     ext.get("clusterid"),
		ParentEventID: ext.get("parenteventid"),
	}
	if hasTime {
		t, err := types.ToTime(ceTime)
		if err != nil {
			return nil, tr, nil, false
		}
		if !t.IsZero() {
			ts := t.UTC().Format("2006-01-02T15:04:05.999999999Z07:00")
			in.EventTimestamp = &ts
		}
	}
	if subject != "" {
		in.ResourceID = &subject
	}
	if len(body) > 0 {
		in.EventData = body
	}
	errs = completeCloudEvent(in, source, id)
	tr, errs = ceTrace(ext.get("traceparent"), errs)
	return in, tr, errs, true
}

// ceExtensions are the extensions of a binary-mode CloudEvent, few enough to look up in a
// slice instead of a map.
type ceExtensions struct {
	names, values []string
	buf           [16]string
}

// add takes the header k (Ce-<name>) as the SDK's binding does: the name with its first
// letter lower-cased, then checked and lower-cased as EventContextV1.SetExtension does. It
// declines (false) a name the SDK refuses or one given twice (the SDK keeps either,
// depending on the map's order).
func (e *ceExtensions) add(k, value string) bool {
	name := k[len("Ce-"):]
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	name = strings.ToLower(name)
	switch name {
	case "id", "source", "type", "datacontenttype", "subject", "time", "specversion", "dataschema":
		return false
	}
	for _, n := range e.names {
		if n == name {
			return false
		}
	}
	if e.names == nil {
		e.names, e.values = e.buf[:0:8], e.buf[8:8:16]
	}
	e.names = append(e.names, name)
	e.values = append(e.values, value)
	return true
}

func (e *ceExtensions) get(name string) *string {
	for i, n := range e.names {
		if n == name {
			return &e.values[i]
		}
	}
	return nil
}
