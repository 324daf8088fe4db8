package query

import (
	"bufio"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/store"
)

// exportFlushEvery is how many events an export writes between flushes: often enough that a
// client sees steady progress, rarely enough that flushing costs nothing measurable.
const exportFlushEvery = 256

// export streams every matching event as NDJSON, in constant memory: rows are encoded as
// PostgreSQL sends them. A client that goes away cancels the query. A failure after the first
// byte cannot change the status any more, so it aborts the connection: the client sees a
// truncated response, never a silently short one.
func (h *Handler) export(w http.ResponseWriter, r *http.Request) error {
	q, err := h.parse(r.URL.Query(), true)
	if err != nil {
		return err
	}
	start := time.Now()
	rc := http.NewResponseController(w)
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	started, count := false, 0
	begin := func() {
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Header().Set("Content-Disposition", `attachment; filename="audit-events.ndjson"`)
			w.WriteHeader(http.StatusOK)
			started = true
		}
	}
	n, err := h.store.StreamEvents(r.Context(), store.StreamParams{Filter: q.params.Filter, Order: q.params.Order, Timeout: h.cfg.ExportTimeout},
		func(e *audit.Event) error {
			begin()
			if err := enc.Encode(e); err != nil {
				return err
			}
			if count++; count%exportFlushEvery != 0 {
				return nil
			}
			if err := bw.Flush(); err != nil {
				return err
			}
			return rc.Flush()
		})
	if err == nil {
		begin()
		err = bw.Flush()
	}
	h.metrics.observe("export", start, int(n))
	h.reads.record(r, "export", int(n))
	switch {
	case err == nil:
		return nil
	case !started:
		return storeError(err)
	case !errors.Is(err, r.Context().Err()):
		slog.Error("export aborted", "error", err, "events_sent", n)
	}
	panic(http.ErrAbortHandler)
}
