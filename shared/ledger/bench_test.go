package ledger_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// BenchmarkHash is the cost of hashing a stored event (~800-byte event_data) from its fields,
// as the sealer and the verifiers do: event_data read and written in RFC 8785 form again.
// (The write path hashes within Prepare, from its one scan: audit's BenchmarkPrepare.)
func BenchmarkHash(b *testing.B) {
	in := audittest.Input(b, nil)
	e, errs := in.Prepare(audit.Defaults{Now: time.Now(), Principal: "bench", RetentionClasses: audit.DefaultRetentionClasses}, audit.DefaultLimits)
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := e.SetHash(); err != nil {
			b.Fatal(err)
		}
	}
}

// The direct RFC 8785 writer and the generic path (the event's JSON, canonicalized) agree on
// every field, set or null: an auditor recomputes hashes with the generic one. The hash Prepare
// takes from its scan of event_data agrees with both.
func TestRecomputeMatchesTheJSONForm(t *testing.T) {
	t.Parallel()
	prepare := func(opts *audittest.EventOpts) audit.Event {
		in := audittest.Input(t, opts)
		e, errs := in.Prepare(audit.Defaults{Now: time.Now(), Principal: "p", RetentionClasses: audit.DefaultRetentionClasses, Hash: true}, audit.DefaultLimits)
		require.Empty(t, errs)
		return e
	}
	// Numbers whose stored and RFC 8785 spellings differ, and names beyond U+FFFF.
	data := json.RawMessage(`{"z":[1.0,2e3,-0.0,"\u2028\t<",1e6,12345678901234567890,1e-7],"a":{"b":null},"é":true,"😀":1,"\ufb33":2}`)
	for _, e := range []audit.Event{prepare(&audittest.EventOpts{EventData: data}), prepare(nil)} {
		got, err := ledger.Recompute(e)
		require.NoError(t, err)
		require.Equal(t, audit.Digest(got[:]), e.EventHash, "Prepare's hash is the recomputed one")
	}
	full := prepare(&audittest.EventOpts{EventData: data})
	s := func(v string) *string { return &v }
	dur := int64(9007199254740993)
	parent := uuid.New()
	full.ActorIP, full.ResourceType, full.ResourceID, full.ResourceName = s("2001:db8::1"), s("Pod"), s("p-1"), s("name \"quoted\"")
	full.ParentEventID, full.TraceID, full.SpanID, full.Namespace, full.ClusterID = &parent, s("t"), s("sp"), s("ns"), s("c")
	full.Severity, full.DurationMS, full.ErrorCode, full.ErrorMessage, full.IsSensitive = s("high"), &dur, s("E1"), s("line\nbreak \x01"), true
	for _, e := range []audit.Event{full, prepare(nil)} {
		b, err := json.Marshal(e)
		require.NoError(t, err)
		want, err := integrity.EventHash(b)
		require.NoError(t, err)
		got, err := ledger.Recompute(e)
		require.NoError(t, err)
		require.Equal(t, want, got, "%s", b)
	}
}

// BenchmarkSeal is the sealer's cost per event: b.N events, hashed as the write path stores
// them, written in batches of 100, then sealed 5000 at a time on one connection. It reports
// the wall time and the CPU of that connection's PostgreSQL backend per sealed event (from
// /proc: backend-µs/event needs the database on this machine). SEAL_LIMIT sets the events of
// one seal (default 5000): at 1000 a seal's fixed cost shows.
//
//	go test ./shared/ledger -run '^$' -bench Seal -benchtime 50000x
func BenchmarkSeal(b *testing.B) {
	ctx := context.Background()
	url := pgtest.NewDatabase(b, pgtest.Options{})
	pool := pgtest.Connect(b, url)
	st := store.New(pool)
	start := time.Now().Add(-time.Duration(b.N) * time.Millisecond)
	var batch []audit.Event
	for i := range b.N {
		ts := start.Add(time.Duration(i) * time.Millisecond)
		e := audittest.Event(b, &audittest.EventOpts{CorrelationID: "c-" + strconv.Itoa(i/25), EventTimestamp: ts, Now: ts})
		if err := ledger.Hash(&e); err != nil {
			b.Fatal(err)
		}
		if batch = append(batch, e); len(batch) == 100 || i == b.N-1 {
			if _, _, err := st.InsertEvents(ctx, store.InsertParams{Events: batch}); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = 1
	one, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer one.Close()
	var pid int
	if err := one.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		b.Fatal(err)
	}
	limit, _ := strconv.Atoi(os.Getenv("SEAL_LIMIT"))
	sealer := &ledger.Sealer{Store: store.New(one), Limit: cmp.Or(limit, 5000)}
	cpu0 := procCPU(pid)
	b.ResetTimer()
	began := time.Now()
	rep, err := sealer.SealAll(ctx)
	elapsed := time.Since(began)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if rep.Sealed != b.N {
		b.Fatalf("sealed %d of %d events", rep.Sealed, b.N)
	}
	b.ReportMetric(float64(elapsed.Microseconds())/float64(rep.Sealed), "wall-µs/event")
	if cpu0 >= 0 {
		b.ReportMetric(float64(procCPU(pid)-cpu0)/float64(rep.Sealed), "backend-µs/event")
	}
	b.ReportMetric(0, "ns/op")
}

// procCPU is the user and system CPU time of a process in µs, or -1 when /proc does not
// show it.
func procCPU(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// The fields after the command name (which may hold spaces) start with the state, field 3.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return (ut + st) * 1_000_000 / 100 // USER_HZ is 100 on Linux
}

// BenchmarkHashVersions is the write path's hash per event in each encoding.
func BenchmarkHashVersions(b *testing.B) {
	in := audittest.Input(b, nil)
	e, errs := in.Prepare(audit.Defaults{Now: time.Now(), Principal: "bench", RetentionClasses: audit.DefaultRetentionClasses}, audit.DefaultLimits)
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	for _, v := range []int{1, 2} {
		b.Run("v"+strconv.Itoa(v), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := e.SetHashVersion(v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
