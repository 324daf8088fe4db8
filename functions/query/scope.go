package query

import (
	"context"
	"net/http"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/google/uuid"
)

// A reader sees the events its scope allows (README "Identity and limits"): a reader of some
// namespaces only theirs, through the store's filter, so pages, cursors, totals and exports
// hold nothing else; and a sensitive event whole only with the right to read sensitive
// events, else with its sensitive members withheld.

// readerScope limits f to the request reader's namespaces and returns its scope.
func readerScope(r *http.Request, f *store.Filter) auth.Scope {
	s := auth.ScopeFrom(r.Context())
	limitTo(s, f)
	return s
}

// limitTo makes s part of f.
func limitTo(s auth.Scope, f *store.Filter) {
	if !s.Cluster {
		f.Scoped, f.InNamespaces = true, append([]string{}, s.Namespaces...)
	}
}

// visible reports whether the reader of scope may read e at all (its namespace); one it may
// not is answered as if it were not stored.
func visible(ctx context.Context, scope auth.Scope, e *audit.Event) (bool, error) {
	ns := ""
	if e.Namespace != nil {
		ns = *e.Namespace
	}
	return scope.Allows(ctx, ns)
}

// readAuditChunk is how many sensitive event ids one read-audit record names at most (37
// bytes each: a record stays far below event_data's 256 KiB).
const readAuditChunk = 4000

// sensitiveReads shows the sensitive events of one read to its reader: whole, with the right,
// their ids kept for the read audit; else withheld.
type sensitiveReads struct {
	may bool
	// ids are the sensitive events read whole and not yet recorded.
	ids []uuid.UUID
	// withheld counts the sensitive events read with their members withheld.
	withheld int
}

func newSensitiveReads(s auth.Scope) *sensitiveReads { return &sensitiveReads{may: s.Sensitive} }

// reveal prepares e for the reader.
func (s *sensitiveReads) reveal(e *audit.Event) {
	switch {
	case !e.IsSensitive:
	case s.may:
		s.ids = append(s.ids, e.EventID)
	default:
		e.Withhold()
		s.withheld++
	}
}
