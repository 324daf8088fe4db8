package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"
)

// events is a Source over a slice, in the archive's order, as the store streams a leaf.
type events []audit.Event

func (s events) StreamLeaf(ctx context.Context, leaf string, fn func(*audit.Event) error) (int64, error) {
	var n int64
	for i := range s {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if err := fn(&s[i]); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// monthOfEvents makes n valid events of class 90 spread over p's month, in archive order. Every
// tenth event has every optional field set, so both nulls and values go through.
func monthOfEvents(tb testing.TB, p Partition, n int) events {
	tb.Helper()
	step := p.Month.AddDate(0, 1, 0).Sub(p.Month) / time.Duration(n+1)
	out := make(events, 0, n)
	for i := range n {
		ts := p.Month.Add(step * time.Duration(i+1)).Truncate(time.Microsecond)
		opts := &audittest.EventOpts{RetentionDays: 90, EventTimestamp: ts, Now: ts.Add(37 * time.Millisecond)}
		if i%10 != 0 {
			out = append(out, audittest.Event(tb, opts))
			continue
		}
		in := audittest.Input(tb, opts)
		s := func(v string) *string { return &v }
		d, sensitive, parent := int64(i*3), true, uuidOf(i)
		in.ActorIP, in.ResourceName, in.TraceID, in.SpanID = s("2001:db8::1"), s("checkout ünïcode"), s("4bf92f3577b34da6a3ce929d0e0e4736"), s("00f067aa0ba902b7")
		in.ClusterID, in.ErrorCode, in.ErrorMessage = s("prod-eu-west-1"), s("E42"), s("it \"broke\"\nbadly")
		in.DurationMS, in.IsSensitive, in.ParentEventID = &d, &sensitive, &parent
		e, errs := in.Prepare(audit.Defaults{Now: ts, Principal: "test-writer", RetentionClasses: audit.DefaultRetentionClasses}, audit.DefaultLimits)
		require.Empty(tb, errs)
		e.ReceivedAt = ts.Add(37 * time.Millisecond)
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b audit.Event) int {
		ra, _ := RowOf(&a)
		rb, _ := RowOf(&b)
		return compareRows(&ra, &rb)
	})
	return out
}

func uuidOf(i int) string { return fmt.Sprintf("0190a5c2-0000-7000-8000-%012x", i) }

func readAll(t *testing.T, c *Copy) []audit.Event {
	t.Helper()
	var out []audit.Event
	for e, err := range c.Events() {
		require.NoError(t, err)
		out = append(out, *e)
	}
	return out
}

func setup(t *testing.T, opts Options) (*Archive, Partition) {
	t.Helper()
	opts.TempDir = t.TempDir()
	a := New(memblob.OpenBucket(nil), opts)
	t.Cleanup(func() { a.Close() })
	p, err := ParsePartition("audit_events_r90_2026_05")
	require.NoError(t, err)
	return a, p
}

func TestWriteFetch_ReadsBackWhatWasStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, p := setup(t, Options{FileRows: 1000, RowGroupRows: 300})
	src := monthOfEvents(t, p, 2500)

	m, err := a.Write(ctx, p, src)
	require.NoError(t, err)
	require.Equal(t, FormatVersion, m.FormatVersion)
	require.Equal(t, "audit_events_r90_2026_05", m.Partition)
	require.Equal(t, 90, m.Class)
	require.Equal(t, "2026-05", m.Month)
	require.EqualValues(t, 2500, m.RowCount)
	require.Equal(t, src[0].EventTimestamp, *m.MinEventTimestamp)
	require.Equal(t, src[len(src)-1].EventTimestamp, *m.MaxEventTimestamp)
	require.Len(t, m.Files, 3, "1000 rows a file")
	require.Equal(t, []int64{1000, 1000, 500}, []int64{m.Files[0].Rows, m.Files[1].Rows, m.Files[2].Rows})
	for i, f := range m.Files {
		require.Equal(t, fmt.Sprintf("part-%03d.parquet", i), f.Name)
		body, err := a.bucket.ReadAll(ctx, p.fileKey(f.Name))
		require.NoError(t, err)
		require.EqualValues(t, len(body), f.Bytes)
		require.Len(t, f.SHA256, 64)
	}

	c, err := a.Fetch(ctx, p)
	require.NoError(t, err)
	defer c.Close()
	require.Equal(t, []audit.Event(src), readAll(t, c), "every field of every event comes back")

	// The manifest is plain JSON with the documented keys.
	body, err := a.bucket.ReadAll(ctx, "audit_events/r90/2026/05/manifest.json")
	require.NoError(t, err)
	var raw map[string]any
	require.NoError(t, json.Unmarshal(body, &raw))
	for _, k := range []string{"format_version", "partition", "class", "month", "row_count", "min_event_timestamp", "max_event_timestamp", "files", "created_at"} {
		require.Contains(t, raw, k)
	}
}

func TestWrite_CorruptFileIsNotAnArchive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, corrupt := range []struct {
		name string
		fn   func(b []byte) []byte
	}{
		{"flipped byte", func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-100] }},
	} {
		t.Run(corrupt.name, func(t *testing.T) {
			t.Parallel()
			a, p := setup(t, Options{})
			a.afterFile = func(key string) {
				b, err := a.bucket.ReadAll(ctx, key)
				require.NoError(t, err)
				require.NoError(t, a.bucket.WriteAll(ctx, key, corrupt.fn(b), nil))
			}
			_, err := a.Write(ctx, p, monthOfEvents(t, p, 200))
			require.ErrorIs(t, err, ErrVerify)
			_, err = a.ReadManifest(ctx, p)
			require.ErrorIs(t, err, ErrNotArchived, "no manifest: the partition may not be dropped")
		})
	}
}

func TestEnsure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, p := setup(t, Options{FileRows: 150})
	src := monthOfEvents(t, p, 400)

	r, err := a.Ensure(ctx, p, src)
	require.NoError(t, err)
	require.False(t, r.Reused)
	require.EqualValues(t, 400, r.LeafRows)
	first := r.Manifest

	// Run again (a run stopped before the drop): the archive is verified and reused, unchanged.
	r, err = a.Ensure(ctx, p, src)
	require.NoError(t, err)
	require.True(t, r.Reused)
	require.EqualValues(t, 400, r.LeafRows)
	require.Equal(t, first.CreatedAt, r.Manifest.CreatedAt)

	// The partition was cleared but for a few held events: the archive still covers it.
	held := events{src[3], src[170], src[399]}
	r, err = a.Ensure(ctx, p, held)
	require.NoError(t, err)
	require.True(t, r.Reused)
	require.EqualValues(t, 3, r.LeafRows)
	require.EqualValues(t, 400, r.Manifest.RowCount)

	// An event the archive does not hold, or holds otherwise, is refused, never overwritten.
	extra := slices.Clone(src)
	extra[200].EventData = json.RawMessage(`{"changed":true}`)
	_, err = a.Ensure(ctx, p, extra)
	require.ErrorIs(t, err, ErrVerify)
	other := monthOfEvents(t, p, 1)
	_, err = a.Ensure(ctx, p, other)
	require.ErrorIs(t, err, ErrVerify)

	// A damaged file fails the verification of the existing archive.
	key := p.fileKey(first.Files[1].Name)
	b, err := a.bucket.ReadAll(ctx, key)
	require.NoError(t, err)
	b[100] ^= 1
	require.NoError(t, a.bucket.WriteAll(ctx, key, b, nil))
	_, err = a.Ensure(ctx, p, src)
	require.ErrorIs(t, err, ErrVerify)
	require.ErrorContains(t, err, "SHA-256")
	// And a missing one.
	require.NoError(t, a.bucket.Delete(ctx, key))
	_, err = a.Fetch(ctx, p)
	require.ErrorIs(t, err, ErrVerify)
	require.ErrorContains(t, err, "missing")
}

func TestWrite_EmptyPartition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, p := setup(t, Options{})
	m, err := a.Write(ctx, p, events{})
	require.NoError(t, err)
	require.Zero(t, m.RowCount)
	require.Empty(t, m.Files)
	require.Nil(t, m.MinEventTimestamp)
	c, err := a.Fetch(ctx, p)
	require.NoError(t, err)
	require.Empty(t, readAll(t, c))
	require.NoError(t, c.Close())
}

func TestWrite_RefusesWhatIsNotThePartition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, p := setup(t, Options{})
	src := monthOfEvents(t, p, 20)
	for name, mutate := range map[string]func(e events){
		"other class":  func(e events) { e[5].RetentionDays = 365 },
		"other month":  func(e events) { e[19].EventTimestamp = p.Month.AddDate(0, 1, 0) },
		"out of order": func(e events) { e[3], e[4] = e[4], e[3] },
		"short hash":   func(e events) { e[7].ContentHash = e[7].ContentHash[:31] },
	} {
		bad := slices.Clone(src)
		mutate(bad)
		_, err := a.Write(ctx, p, bad)
		require.Error(t, err, name)
		_, err = a.ReadManifest(ctx, p)
		require.ErrorIs(t, err, ErrNotArchived, name)
	}
}

func TestReadManifest_Checks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, p := setup(t, Options{})
	_, err := a.Write(ctx, p, monthOfEvents(t, p, 10))
	require.NoError(t, err)
	good, err := a.bucket.ReadAll(ctx, p.ManifestKey())
	require.NoError(t, err)
	for name, edit := range map[string]func(m map[string]any){
		"newer format":   func(m map[string]any) { m["format_version"] = FormatVersion + 1 },
		"other leaf":     func(m map[string]any) { m["partition"] = "audit_events_r90_2026_06" },
		"escaping name":  func(m map[string]any) { m["files"].([]any)[0].(map[string]any)["name"] = "../../secret" },
		"count mismatch": func(m map[string]any) { m["row_count"] = 11 },
	} {
		var m map[string]any
		require.NoError(t, json.Unmarshal(good, &m))
		edit(m)
		body, _ := json.Marshal(m)
		require.NoError(t, a.bucket.WriteAll(ctx, p.ManifestKey(), body, nil))
		_, err := a.ReadManifest(ctx, p)
		require.ErrorIs(t, err, ErrVerify, name)
	}
	// Fields a later version adds are ignored by this one.
	var m map[string]any
	require.NoError(t, json.Unmarshal(good, &m))
	m["replicas"] = []any{map[string]any{"url": "s3://elsewhere", "copied_at": "..."}}
	body, _ := json.Marshal(m)
	require.NoError(t, a.bucket.WriteAll(ctx, p.ManifestKey(), body, nil))
	_, err = a.ReadManifest(ctx, p)
	require.NoError(t, err)
}

func TestParsePartition(t *testing.T) {
	t.Parallel()
	p, err := ParsePartition("audit_events_r2557_2031_12")
	require.NoError(t, err)
	require.Equal(t, Partition{Name: "audit_events_r2557_2031_12", Class: 2557, Month: time.Date(2031, 12, 1, 0, 0, 0, 0, time.UTC)}, p)
	require.Equal(t, "audit_events/r2557/2031/12", p.Dir())
	require.Equal(t, p, PartitionOf(2557, time.Date(2031, 12, 31, 23, 59, 0, 0, time.UTC)))
	for _, bad := range []string{"audit_events_r90_2026_13", "audit_events_r90", "audit_events_r90_2026_05; DROP TABLE x", "../audit_events_r90_2026_05"} {
		_, err := ParsePartition(bad)
		require.Error(t, err, bad)
	}
}

func TestFileBucket(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	a, err := Open(ctx, "file://"+dir, Options{TempDir: t.TempDir()})
	require.NoError(t, err)
	defer a.Close()
	p := PartitionOf(90, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	_, err = a.Write(ctx, p, monthOfEvents(t, p, 50))
	require.NoError(t, err)
	for _, name := range []string{"part-000.parquet", "manifest.json"} {
		_, err := os.Stat(filepath.Join(dir, "audit_events", "r90", "2026", "05", name))
		require.NoError(t, err, name)
	}
	_, err = Open(ctx, "ftp://example/x", Options{})
	require.Error(t, err)
	// Every scheme ARCHIVE_URL may have is linked in (opening one needs its cloud's credentials).
	for _, scheme := range []string{"file", "s3", "gs", "azblob"} {
		require.True(t, blob.DefaultURLMux().ValidBucketScheme(scheme), scheme)
	}
}

var (
	benchOnce   sync.Once
	benchEvents map[string]events
)

// BenchmarkArchive archives a month of 100,000 events and reports the archive's bytes per event.
// "envelope" is audittest's realistic event (the common envelope, about 850 bytes of event_data
// that differ from event to event only in ids); "varied" also varies the payload's values (pod,
// alert, labels, times, scores, a trace), as a busier service's events would:
//
//	go test -run '^$' -bench Archive -benchtime 1x ./shared/archive/
func BenchmarkArchive(b *testing.B) {
	p := PartitionOf(90, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	benchOnce.Do(func() {
		benchEvents = map[string]events{"envelope": monthOfEvents(b, p, 100_000)}
		varied := slices.Clone(benchEvents["envelope"])
		rng := rand.New(rand.NewPCG(1, 2))
		alerts := []string{"KubePodCrashLooping", "KubePodNotReady", "KubeDeploymentReplicasMismatch", "NodeFilesystemSpaceFillingUp",
			"TargetDown", "KubeJobFailed", "CPUThrottlingHigh", "KubeContainerWaiting", "etcdMembersDown", "KubeMemoryOvercommit"}
		for i := range varied {
			e := &varied[i]
			app := fmt.Sprintf("svc-%02d", rng.IntN(40))
			pod := fmt.Sprintf("%s-%08x-%05x", app, rng.Uint32(), rng.IntN(1<<20))
			data := map[string]any{"version": "1.0", "service": "gateway", "operation": "signal.received", "status": "success",
				"payload": map[string]any{"signal_type": "prometheus", "alert_name": alerts[rng.IntN(len(alerts))],
					"fingerprint": fmt.Sprintf("%016x", rng.Uint64()), "severity": []string{"info", "warning", "critical"}[rng.IntN(3)],
					"namespace": fmt.Sprintf("team-%d", rng.IntN(25)),
					"labels": map[string]any{"app": app, "team": fmt.Sprintf("team-%d", rng.IntN(25)), "pod": pod, "container": "api",
						"cluster": []string{"prod-eu-west-1", "prod-us-east-1", "staging"}[rng.IntN(3)]},
					"annotations": map[string]any{"summary": "Pod is crash looping",
						"description": fmt.Sprintf("Pod %s (api) is restarting %.2f times / 10 minutes.", pod, rng.Float64()*10),
						"runbook_url": "https://runbooks.example.com/" + app},
					"starts_at":  e.EventTimestamp.Add(-time.Duration(rng.IntN(3600)) * time.Second).Format(time.RFC3339),
					"trace_id":   fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64()),
					"risk_score": rng.IntN(100), "retries": rng.IntN(5), "deduplicated": rng.IntN(2) == 0,
					"remediation_request": e.CorrelationID, "duration_ms": rng.IntN(5000)}}
			body, err := json.Marshal(data)
			if err != nil {
				b.Fatal(err)
			}
			e.EventData = body
		}
		benchEvents["varied"] = varied
	})
	for _, name := range []string{"envelope", "varied"} {
		src := benchEvents[name]
		b.Run(name, func(b *testing.B) {
			var data int
			for _, e := range src {
				data += len(e.EventData)
			}
			ctx := context.Background()
			for b.Loop() {
				a := New(memblob.OpenBucket(nil), Options{TempDir: b.TempDir()})
				start := time.Now()
				m, err := a.Write(ctx, p, src)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(m.Bytes())/float64(m.RowCount), "bytes/event")
				b.ReportMetric(float64(data)/float64(m.RowCount), "event_data_bytes/event")
				b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(m.RowCount), "ns/event")
				a.Close()
			}
		})
	}
}

// A sanity check that the rows digest is about values: equal rows, equal encodings; any field
// changed, another encoding.
func TestAppendCanonical(t *testing.T) {
	t.Parallel()
	p := PartitionOf(90, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	e := monthOfEvents(t, p, 1)[0]
	r, err := RowOf(&e)
	require.NoError(t, err)
	base := r.AppendCanonical(nil)
	s := "x"
	for name, mutate := range map[string]func(r *Row){
		"resource_type null": func(r *Row) { r.ResourceType = nil },
		"resource_id moved":  func(r *Row) { r.ResourceType, r.ResourceID = r.ResourceID, r.ResourceType },
		"actor_ip":           func(r *Row) { r.ActorIP = &s },
		"received_at":        func(r *Row) { r.ReceivedAt = r.ReceivedAt.Add(time.Microsecond) },
		"content_hash":       func(r *Row) { r.ContentHash[31] ^= 1 },
		"is_sensitive":       func(r *Row) { r.IsSensitive = !r.IsSensitive },
	} {
		c := r
		mutate(&c)
		require.False(t, bytes.Equal(base, c.AppendCanonical(nil)), name)
	}
	back := r.Event()
	r2, err := RowOf(&back)
	require.NoError(t, err)
	require.Equal(t, base, r2.AppendCanonical(nil))
}

// TestColdRow_ErasedEventRoundTrip: a cold row carries what a version 2 hash is recomputed from
// (the salt key, the kept member digests), so an erased event read from the cold tier still
// verifies and still says which members were erased.
func TestColdRow_ErasedEventRoundTrip(t *testing.T) {
	t.Parallel()
	p := PartitionOf(90, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	e := monthOfEvents(t, p, 1)[0]
	e.HashVersion, e.EventHash = 2, bytes.Repeat([]byte{7}, 32)
	e.HashMembers = json.RawMessage(`{"/actor_id":{"digest":"00"},"/payload/user":{"digest":"01","salt":"02"}}`)
	r := ColdRowOf(&e)
	back := r.Event()
	require.Equal(t, e.HashMembers, back.HashMembers)
	require.Equal(t, []string{"/actor_id"}, back.Erased)
	require.Equal(t, 2, back.HashVersion)

	e.HashMembers, e.HashSalt = nil, bytes.Repeat([]byte{9}, 16)
	r = ColdRowOf(&e)
	back = r.Event()
	require.Equal(t, e.HashSalt, back.HashSalt)
	require.Nil(t, back.Erased)
	changed := r
	changed.HashSalt = bytes.Repeat([]byte{8}, 16)
	require.NotEqual(t, r.appendCanonical(nil), changed.appendCanonical(nil), "a cold file's row digest covers the salt key")
}

// TestWriteMonth_FilesStayWithinADay: a month of a sparse class is cut at UTC day boundaries
// as well as at FileRows, so an export never holds more than a day of one file's events; every
// event is written once and each file reads back.
func TestWriteMonth_FilesStayWithinADay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := PartitionOf(90, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	es := monthOfEvents(t, p, 100) // about three events a day
	tier := NewCold(memblob.OpenBucket(nil), ColdOptions{FileRows: 4})
	files, err := tier.WriteMonth(ctx, 90, p.Month, func(fn func(*audit.Event) error) (int64, error) {
		for i := range es {
			if err := fn(&es[i]); err != nil {
				return 0, err
			}
		}
		return int64(len(es)), nil
	})
	require.NoError(t, err)
	days := map[string]bool{}
	rows := 0
	for _, f := range files {
		require.Equal(t, f.MinEventTimestamp.UTC().Format(time.DateOnly), f.MaxEventTimestamp.UTC().Format(time.DateOnly), "%s spans days", f.Key)
		require.LessOrEqual(t, f.Rows, int64(4))
		days[f.MinEventTimestamp.UTC().Format(time.DateOnly)] = true
		rows += int(f.Rows)
		require.NoError(t, tier.Check(ctx, f))
	}
	require.Equal(t, len(es), rows)
	require.Len(t, days, 31, "one day per file at most, and every day of May has events")
}
