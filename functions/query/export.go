package query

import (
	"bufio"
	"cmp"
	"encoding/csv"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/shared/web"
)

// exportFlushEvery is how many events an export writes between flushes: often enough that a
// client sees steady progress, rarely enough that flushing costs nothing measurable.
const exportFlushEvery = 256

// export streams every matching event as NDJSON (or CSV with format=csv), in constant memory:
// rows are encoded as PostgreSQL sends them. A client that goes away cancels the query. A
// failure after the first byte cannot change the status any more, so it aborts the
// connection: the client sees a truncated response, never a silently short one.
func (h *Handler) export(w http.ResponseWriter, r *http.Request) error {
	values, err := web.Query(r)
	if err != nil {
		return err
	}
	if h.log != nil && wantsJSONExport(r, values) {
		return h.exportJSON(w, r, values) // kubernaut's shape
	}
	scope := auth.ScopeFrom(r.Context())
	q, err := h.parse(values, true, scope)
	if err != nil {
		return err
	}
	start := time.Now()
	rc := http.NewResponseController(w)
	bw := bufio.NewWriterSize(w, 64<<10)
	var line []byte
	encode := func(v any) error {
		line = append(v.(*audit.Event).AppendJSON(line[:0]), '\n')
		_, err := bw.Write(line)
		return err
	}
	flush := bw.Flush
	contentType, filename := "application/x-ndjson", "audit-events.ndjson"
	if q.format == "csv" {
		// Its own buffer in front of bw: csv.NewWriter(bw) would share bw's, and a flush of
		// the CSV writer would then send the response before its headers are set.
		cw := csv.NewWriter(struct{ io.Writer }{bw})
		rec := make([]string, 0, len(csvFields))
		encode = func(v any) error { return cw.Write(csvRecord(v.(*audit.Event), rec)) }
		flush = func() error {
			if cw.Flush(); cw.Error() != nil {
				return cw.Error()
			}
			return bw.Flush()
		}
		contentType, filename = "text/csv; charset=utf-8; header=present", "audit-events.csv"
		if err := cw.Write(csvHeader()); err != nil {
			return err
		}
	}
	started, count := false, 0
	sens := newSensitiveReads(scope)
	begin := func() {
		if !started {
			w.Header().Set("Content-Type", contentType)
			w.Header().Set("Content-Disposition", `attachment; filename="`+filename+`"`)
			w.WriteHeader(http.StatusOK)
			started = true
		}
	}
	var n int64
	var streamErr error // once the answer has started, an error ends it; no other database can take over
	err = h.read(r.Context(), w, h.fresh(&q.params.Filter), func(st Store, _ bool) (err error) {
		n, err = st.StreamEvents(r.Context(), store.StreamParams{Filter: q.params.Filter, Order: q.params.Order, Timeout: h.cfg.ExportTimeout},
			func(e *audit.Event) error {
				begin()
				if sens.reveal(e); len(sens.ids) >= readAuditChunk {
					// Recorded as the export goes, so its memory stays constant.
					h.reads.record(r, "export", 0, sens)
					sens.ids = sens.ids[:0]
				}
				if err := encode(e); err != nil {
					return err
				}
				if count++; count%exportFlushEvery != 0 {
					return nil
				}
				if err := flush(); err != nil {
					return err
				}
				return rc.Flush()
			})
		if started {
			streamErr, err = err, nil
		}
		return err
	})
	err = cmp.Or(err, streamErr)
	if err == nil {
		begin()
		err = flush()
	}
	h.metrics.observe("export", start, int(n))
	h.reads.record(r, "export", int(n), sens)
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
