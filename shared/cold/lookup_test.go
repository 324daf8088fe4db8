package cold_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/archive"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/cold"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/stretchr/testify/require"
)

// A lookup opens only the cold files whose catalogue entry (time range, lookup filter) may hold
// its key: PostgreSQL tests the filters as archive.LookupFilterHas defines them; a file recorded
// without a filter is read by every lookup until maintenance computes the filter it was written
// with.
func TestLookupOpensOnlyTheFilesTheCatalogueNames(t *testing.T) {
	t.Parallel()
	f := setup(t, fileBucket)
	ctx := context.Background()
	// Ten correlations in one month that goes cold: files of 40 events hold one or two each.
	var ids []string
	for i := range 10 {
		id := fmt.Sprintf("rr-lookup-%d", i)
		ids = append(ids, id)
		f.write(t, id, months(f.now, 4).Add(time.Duration(i)*time.Hour), 30, 2557)
	}
	f.run(t)
	files, err := f.st.ColdFiles(ctx)
	require.NoError(t, err)
	require.Greater(t, len(files), 5)
	holds := map[string]map[string]bool{} // file key → correlations in it
	for _, file := range files {
		require.NotNil(t, file.LookupFilter, file.Key)
		holds[file.Key] = map[string]bool{}
		require.NoError(t, f.tier.Scan(ctx, archive.ColdFile{Key: file.Key, Rows: file.Rows, Bytes: file.Bytes, SHA256: file.SHA256, RowsSHA256: file.RowsSHA256},
			func(r *archive.ColdRow) error {
				holds[file.Key][r.CorrelationID] = true
				require.True(t, archive.LookupFilterHas(file.LookupFilter, "correlation_id", r.CorrelationID))
				require.True(t, archive.LookupFilterHas(file.LookupFilter, "actor_id", r.ActorID))
				require.True(t, archive.LookupFilterHas(file.LookupFilter, "event_type", r.EventType))
				return nil
			}))
	}
	probe := func(col string, vals ...string) store.ColdFileQuery {
		var q store.ColdFileQuery
		for _, v := range vals {
			q.Probes = append(q.Probes, store.ColdProbe{Group: 0, Positions: archive.LookupProbe(col, v)})
		}
		return q
	}
	keys := func(fs []store.ColdFile) []string {
		var out []string
		for _, f := range fs {
			out = append(out, f.Key)
		}
		return out
	}

	// The catalogue's answer is the filters' answer, for keys present and absent.
	for _, id := range append(slices.Clone(ids), "rr-absent-1", "rr-absent-2") {
		got, err := f.st.ColdFilesFor(ctx, probe("correlation_id", id))
		require.NoError(t, err)
		var want []string
		for _, file := range files {
			if archive.LookupFilterHas(file.LookupFilter, "correlation_id", id) {
				want = append(want, file.Key)
			} else {
				require.False(t, holds[file.Key][id], "the filter of %s lacks %s, which it holds", file.Key, id)
			}
		}
		require.Equal(t, want, keys(got), id)
	}
	// Keys of one group are alternatives; groups must all match.
	both, err := f.st.ColdFilesFor(ctx, probe("correlation_id", ids[0], ids[9]))
	require.NoError(t, err)
	one, err := f.st.ColdFilesFor(ctx, probe("correlation_id", ids[0]))
	require.NoError(t, err)
	require.Greater(t, len(both), len(one))
	q := probe("correlation_id", ids[0])
	q.Probes = append(q.Probes, store.ColdProbe{Group: 1, Positions: archive.LookupProbe("actor_id", "no-such-actor")})
	none, err := f.st.ColdFilesFor(ctx, q)
	require.NoError(t, err)
	require.Less(t, len(none), len(one))
	// Time bounds prune too.
	since, until := months(f.now, 4).Add(5*time.Hour), months(f.now, 4).Add(6*time.Hour)
	inHour, err := f.st.ColdFilesFor(ctx, store.ColdFileQuery{Since: &since, Until: &until})
	require.NoError(t, err)
	require.NotEmpty(t, inHour)
	require.Less(t, len(inHour), len(files))

	lookup := func(r *cold.Reader, id string) []audit.Event {
		t.Helper()
		page, err := cold.NewTiered(f.st, r).QueryEvents(ctx, store.QueryParams{Filter: store.Filter{CorrelationIDs: []string{id}}, Order: store.Ascending, Limit: 100})
		require.NoError(t, err)
		require.Len(t, page.Events, 30)
		return page.Events
	}
	r := cold.NewReader(f.tier.Bucket(), 0)
	want := lookup(r, ids[3])
	maybe, err := f.st.ColdFilesFor(ctx, probe("correlation_id", ids[3]))
	require.NoError(t, err)
	require.LessOrEqual(t, r.Stats().Opened, int64(len(maybe)))
	require.Less(t, r.Stats().Opened, int64(len(files)))

	// Files recorded without a filter are read by every lookup, with the same answer, until
	// the next maintenance run gives them the filter they would have been written with.
	_, err = f.pool.Exec(ctx, `UPDATE audit_cold_files SET lookup_filter = NULL`)
	require.NoError(t, err)
	unsummarized, err := f.st.ColdFilesFor(ctx, probe("correlation_id", "rr-absent-1"))
	require.NoError(t, err)
	require.Len(t, unsummarized, len(files))
	r = cold.NewReader(f.tier.Bucket(), 0)
	require.Equal(t, want, lookup(r, ids[3]))
	rep := f.run(t)
	var summarized int
	for _, a := range rep.Actions {
		if a.Kind == "cold.summarized" {
			summarized++
		}
	}
	require.Equal(t, len(files), summarized)
	again, err := f.st.ColdFiles(ctx)
	require.NoError(t, err)
	for i := range files {
		require.Equal(t, files[i].LookupFilter, again[i].LookupFilter, files[i].Key)
	}
	require.Empty(t, slices.DeleteFunc(f.run(t).Actions, func(a lifecycle.Action) bool { return a.Kind != "cold.summarized" }), "a file is summarized once")
}
