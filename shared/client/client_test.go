package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/client"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// writeFunction is the real write function over a database of its own, served on a fixed
// loopback address so that it can be stopped and started again where clients expect it.
type writeFunction struct {
	t    testing.TB
	pool *pgxpool.Pool
	addr string
	opts []write.Option

	mu       sync.Mutex
	srv      *http.Server
	h        *write.Handler
	inflight *inflight
	// answers counts the function's answers by status.
	answers sync.Map // int → *atomic.Int64
}

// inflight counts the requests in a server's handlers, so that the write function is closed
// only after its last handler returned (Handler.Close must follow the server's end), also when
// the server is stopped abruptly.
type inflight struct {
	mu      sync.Mutex
	idle    *sync.Cond
	n       int
	stopped bool
}

func (f *inflight) enter() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return false
	}
	f.n++
	return true
}

func (f *inflight) leave() {
	f.mu.Lock()
	f.n--
	f.idle.Broadcast()
	f.mu.Unlock()
}

// stop refuses new requests and waits for those in handlers.
func (f *inflight) stop() {
	f.mu.Lock()
	f.stopped = true
	for f.n > 0 {
		f.idle.Wait()
	}
	f.mu.Unlock()
}

func writeConfig() write.Config {
	return write.Config{MaxClockSkew: 5 * time.Minute,
		RetentionClasses: "90,180,365,730,1095,1825,2557", Committers: 2, GroupMaxEvents: 1000,
		GroupWait: 2 * time.Millisecond, Timeout: 10 * time.Second}
}

func startWrite(t testing.TB, opts ...write.Option) *writeFunction {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &writeFunction{t: t, pool: pgtest.NewPool(t), addr: ln.Addr().String(), opts: opts}
	f.serve(ln)
	t.Cleanup(f.stop)
	return f
}

func (f *writeFunction) url() string { return "http://" + f.addr }

func (f *writeFunction) serve(ln net.Listener) {
	h, err := write.New(store.New(f.pool), writeConfig(), prometheus.NewRegistry(), f.opts...)
	require.NoError(f.t, err)
	mux := http.NewServeMux()
	h.Routes(mux)
	in := &inflight{}
	in.idle = sync.NewCond(&in.mu)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !in.enter() {
			panic(http.ErrAbortHandler) // stopped: the connection is cut, as by a dying process
		}
		defer in.leave()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		mux.ServeHTTP(rec, r)
		n, _ := f.answers.LoadOrStore(rec.status, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	})}
	f.mu.Lock()
	f.srv, f.h, f.inflight = srv, h, in
	f.mu.Unlock()
	go srv.Serve(ln) //nolint:errcheck // ends with ErrServerClosed when stopped
}

// stop closes the listener and every connection at once, as a crashed or evicted function
// would: requests in flight get no answer, though what they committed stays committed.
func (f *writeFunction) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.srv != nil {
		_ = f.srv.Close()
		f.inflight.stop()
		f.h.Close()
		f.srv, f.h = nil, nil
	}
}

// start serves again on the same address.
func (f *writeFunction) start() {
	var ln net.Listener
	require.Eventually(f.t, func() bool {
		var err error
		ln, err = net.Listen("tcp", f.addr)
		return err == nil
	}, 10*time.Second, 50*time.Millisecond, "listen on %s again", f.addr)
	f.serve(ln)
}

func (f *writeFunction) answered(status int) int64 {
	n, ok := f.answers.Load(status)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// rows returns how many of ids are stored, and how many events are stored in all.
func (f *writeFunction) rows(t testing.TB, ids []string) (ours, total int) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE event_id = ANY($1::uuid[])`, ids).Scan(&ours))
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT count(*) FROM audit_events`).Scan(&total))
	return ours, total
}

// event builds a valid gateway event.
func event(t testing.TB, n int) *audit.Input {
	t.Helper()
	in, err := audit.NewGatewayEvent("signal.received").
		WithCorrelationID(fmt.Sprintf("rr-%d", n/25)).
		WithSignalType("prometheus").
		WithFingerprint(fmt.Sprintf("fp-%08d", n)).
		WithAlertName("KubePodCrashLooping", "critical").
		WithLabels(map[string]string{"app": "checkout", "pod": fmt.Sprintf("checkout-%d", n%97)}, nil).
		WithRiskScore(n%100).
		WithResource("Signal", fmt.Sprintf("fp-%08d", n)).
		Build()
	require.NoError(t, err)
	return in
}

// errorLog collects what an Emitter reports.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) add(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

func (l *errorLog) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

func newClient(t testing.TB, cfg client.Config) *client.Client {
	t.Helper()
	c, err := client.New(cfg)
	require.NoError(t, err)
	return c
}

// TestEmitter_ConcurrentExactlyOnce: 10,000 events from 8 goroutines arrive exactly once.
func TestEmitter_ConcurrentExactlyOnce(t *testing.T) {
	t.Parallel()
	f := startWrite(t)
	var errs errorLog
	em, err := client.NewEmitter(newClient(t, client.Config{URL: f.url()}), client.EmitterConfig{BufferSize: 20_000, OnError: errs.add})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(em))

	const goroutines, each = 8, 1250
	ids := make([][]string, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				in := event(t, g*each+i)
				ids[g] = append(ids[g], *in.EventID)
				if err := em.Emit(in); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, em.Close(ctx))
	require.Empty(t, errs.all())

	var all []string
	for _, g := range ids {
		all = append(all, g...)
	}
	ours, total := f.rows(t, all)
	require.Equal(t, goroutines*each, ours)
	require.Equal(t, goroutines*each, total)
	s := em.Stats()
	require.EqualValues(t, goroutines*each, s.Emitted)
	require.EqualValues(t, goroutines*each, s.Sent)
	require.Zero(t, s.Buffered)
	for reason, n := range s.Dropped {
		require.Zero(t, n, reason)
	}
	require.EqualValues(t, goroutines*each, metric(t, reg, "auditstore_client_events_sent_total"))
	require.EqualValues(t, goroutines*each, metric(t, reg, "auditstore_client_events_emitted_total"))
	require.ErrorIs(t, em.Emit(event(t, 0)), client.ErrClosed)
	require.EqualValues(t, 1, em.Stats().Dropped[client.DroppedClosed])
}

// metric returns the value of a counter (the first series) gathered from reg.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestEmitter_StoreDown stops the write function for 10 s in the middle of a stream of
// events (requests in flight get no answer) and starts it again on the same address: every
// event arrives exactly once, the ones whose answer was lost included.
func TestEmitter_StoreDown(t *testing.T) {
	if testing.Short() {
		t.Skip("stops the write function for 10 s")
	}
	t.Parallel()
	f := startWrite(t)
	var errs errorLog
	em, err := client.NewEmitter(newClient(t, client.Config{URL: f.url(), MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second}),
		client.EmitterConfig{BatchSize: 50, MaxBatchAge: 20 * time.Millisecond, BufferSize: 50_000, OnError: errs.add})
	require.NoError(t, err)

	var (
		mu      sync.Mutex
		ids     []string
		emitted atomic.Int64
		stop    atomic.Bool
		wg      sync.WaitGroup
	)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				in := event(t, g*1_000_000+i)
				if err := em.Emit(in); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ids = append(ids, *in.EventID)
				mu.Unlock()
				emitted.Add(1)
				time.Sleep(5 * time.Millisecond) // about 800 events a second in all
			}
		}()
	}
	require.Eventually(t, func() bool { return em.Stats().Sent > 500 }, time.Minute, 10*time.Millisecond)
	f.stop()
	down := emitted.Load()
	time.Sleep(10 * time.Second)
	require.Greater(t, emitted.Load(), down, "Emit went on while the store was down")
	s := em.Stats()
	require.Less(t, s.Sent, uint64(emitted.Load()), "and the events waited in the buffer")
	require.Positive(t, s.Retried)
	f.start()
	back := emitted.Load()
	require.Eventually(t, func() bool { return int64(em.Stats().Sent) > back }, time.Minute, 20*time.Millisecond)
	stop.Store(true)
	wg.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, em.Close(ctx))
	require.Empty(t, errs.all())
	mu.Lock()
	defer mu.Unlock()
	ours, total := f.rows(t, ids)
	require.Equal(t, len(ids), ours, "every event arrived")
	require.Equal(t, len(ids), total, "and none twice")
	s = em.Stats()
	require.EqualValues(t, len(ids), s.Sent)
	t.Logf("%d events, %d of them emitted during the outage; %d retried sends; 200 (all duplicates) answers: %d",
		len(ids), back-down, s.Retried, f.answered(http.StatusOK))
}

// TestEmitter_SpoolAcrossRestart: an Emitter whose store is down spools its events and is
// closed (the process ends); the next Emitter on the same spool directory delivers them.
func TestEmitter_SpoolAcrossRestart(t *testing.T) {
	t.Parallel()
	f := startWrite(t)
	f.stop()
	dir := filepath.Join(t.TempDir(), "spool")
	c := newClient(t, client.Config{URL: f.url(), MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	var errs errorLog
	cfg := client.EmitterConfig{BatchSize: 100, MaxBatchAge: 10 * time.Millisecond, SpoolDir: dir, SpoolAfter: 300 * time.Millisecond, OnError: errs.add}

	a, err := client.NewEmitter(c, cfg)
	require.NoError(t, err)
	_, err = client.NewEmitter(c, cfg)
	require.ErrorContains(t, err, "in use by another emitter", "two emitters on one spool would send every event twice")
	var ids []string
	for i := range 1000 {
		in := event(t, i)
		ids = append(ids, *in.EventID)
		require.NoError(t, a.Emit(in))
	}
	// The store stays down: past SpoolAfter, batches go to disk.
	require.Eventually(t, func() bool { return a.Stats().Spooled > 0 }, 30*time.Second, 10*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, a.Close(ctx), "nothing is dropped: what the store did not take is on disk")
	sa := a.Stats()
	require.EqualValues(t, 1000, sa.Spooled)
	require.Zero(t, sa.Sent)
	require.Positive(t, sa.SpoolFiles)
	require.Positive(t, sa.SpoolBytes)
	files, err := filepath.Glob(filepath.Join(dir, "*.batch.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)

	// The process restarts; so does the store.
	f.start()
	b, err := client.NewEmitter(c, cfg)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return b.Stats().Sent == 1000 }, time.Minute, 10*time.Millisecond)
	require.NoError(t, b.Close(ctx))
	require.Empty(t, errs.all())
	ours, total := f.rows(t, ids)
	require.Equal(t, 1000, ours)
	require.Equal(t, 1000, total)
	files, err = filepath.Glob(filepath.Join(dir, "*.batch.json"))
	require.NoError(t, err)
	require.Empty(t, files, "delivered batches are deleted")
	sb := b.Stats()
	require.Zero(t, sb.SpoolFiles)
	require.Zero(t, sb.SpoolBytes)
}

// TestEmitter_SpoolWhenBufferFills: a store slower than the service does not make Emit drop
// events when there is a spool: past half the buffer they go to disk, and from there to the
// store.
func TestEmitter_SpoolWhenBufferFills(t *testing.T) {
	t.Parallel()
	f := startWrite(t)
	f.stop() // the store takes nothing until the buffer has spilled
	var errs errorLog
	em, err := client.NewEmitter(newClient(t, client.Config{URL: f.url(), MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}),
		client.EmitterConfig{BatchSize: 50, BufferSize: 400, SpoolDir: t.TempDir(), SpoolAfter: time.Hour, OnError: errs.add})
	require.NoError(t, err)
	var ids []string
	for i := range 3000 {
		in := event(t, i)
		ids = append(ids, *in.EventID)
		for {
			err := em.Emit(in)
			if !errors.Is(err, client.ErrBufferFull) {
				require.NoError(t, err)
				break
			}
			time.Sleep(time.Millisecond) // the spiller is writing; it frees room in milliseconds
		}
	}
	require.Greater(t, em.Stats().Spooled, uint64(2000), "most events waited on disk, not in memory")
	f.start()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, em.Close(ctx))
	require.Empty(t, errs.all())
	ours, total := f.rows(t, ids)
	require.Equal(t, 3000, ours)
	require.Equal(t, 3000, total)
	require.Zero(t, em.Stats().SpoolFiles)
}

// TestEmitter_CloseDrainsSpoolAfterAttemptInFlight: an attempt that was under way when Close
// began and fails after it (the store coming back just then) does not end Close's draining of
// the spool, and a batch the senders spill during Close is drained too.
func TestEmitter_CloseDrainsSpoolAfterAttemptInFlight(t *testing.T) {
	t.Parallel()
	f := startWrite(t)
	net := &outage{mode: outageFail, release: make(chan struct{})}
	var errs errorLog
	em, err := client.NewEmitter(newClient(t, client.Config{URL: f.url(), HTTPClient: &http.Client{Transport: net},
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}),
		client.EmitterConfig{BatchSize: 100, MaxBatchAge: time.Hour, Senders: 1, SpoolDir: t.TempDir(),
			SpoolAfter: time.Millisecond, OnError: errs.add})
	require.NoError(t, err)
	var ids []string
	emit := func(n int) {
		for range n {
			in := event(t, len(ids))
			ids = append(ids, *in.EventID)
			require.NoError(t, em.Emit(in))
		}
	}
	emit(300)
	require.Eventually(t, func() bool { return em.Stats().Spooled == 300 }, 30*time.Second, 5*time.Millisecond)
	emit(50) // a batch that will not fill: it waits in memory for Close

	net.set(outageHold)
	require.Eventually(t, func() bool { return net.holding() == 1 }, 30*time.Second, time.Millisecond,
		"the replayer's next attempt is under way")
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		closed <- em.Close(ctx)
	}()
	require.Eventually(t, func() bool { return em.Stats().Spooled == 350 }, 30*time.Second, time.Millisecond,
		"Close spooled the last batch: the store has been failing")
	net.set(outagePass)
	close(net.release) // the held attempt fails now, after Close began; the store answers from here on

	require.NoError(t, <-closed)
	require.Empty(t, errs.all())
	ours, total := f.rows(t, ids)
	require.Equal(t, 350, ours, "every event was delivered by Close, none left on disk")
	require.Equal(t, 350, total)
	st := em.Stats()
	require.Zero(t, st.SpoolFiles)
}

// outage is an HTTP transport that fails every request, or holds each one until released and
// then fails it, or passes it on, as the test sets.
type outage struct {
	mu      sync.Mutex
	mode    int
	held    int
	release chan struct{}
}

const (
	outageFail = iota
	outageHold
	outagePass
)

func (o *outage) set(mode int) {
	o.mu.Lock()
	o.mode = mode
	o.mu.Unlock()
}

func (o *outage) holding() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.held
}

func (o *outage) RoundTrip(r *http.Request) (*http.Response, error) {
	o.mu.Lock()
	mode := o.mode
	if mode == outageHold {
		o.held++
	}
	o.mu.Unlock()
	switch mode {
	case outagePass:
		return http.DefaultTransport.RoundTrip(r)
	case outageHold:
		<-o.release
	}
	if r.Body != nil {
		_ = r.Body.Close()
	}
	return nil, errors.New("connect: connection refused (simulated)")
}

// TestEmitter_CloseDrainsAndFlush: Close sends what is buffered, however young; Flush sends
// what was emitted before it and waits for the store's acknowledgement.
func TestEmitter_CloseDrainsAndFlush(t *testing.T) {
	t.Parallel()
	f := startWrite(t)
	em, err := client.NewEmitter(newClient(t, client.Config{URL: f.url()}), client.EmitterConfig{BatchSize: 1000, MaxBatchAge: time.Hour})
	require.NoError(t, err)
	var ids []string
	for i := range 10 {
		in := event(t, i)
		ids = append(ids, *in.EventID)
		require.NoError(t, em.Emit(in))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, em.Flush(ctx))
	ours, _ := f.rows(t, ids)
	require.Equal(t, 10, ours, "Flush returns once the store has them")

	for i := 10; i < 2500; i++ {
		in := event(t, i)
		ids = append(ids, *in.EventID)
		require.NoError(t, em.Emit(in))
	}
	require.NoError(t, em.Close(ctx))
	ours, total := f.rows(t, ids)
	require.Equal(t, 2500, ours, "Close sent the last 500, which waited for a batch of 1000 that would never fill")
	require.Equal(t, 2500, total)
	require.NoError(t, em.Close(ctx), "a second Close returns the first one's result")
	flushCtx, flushCancel := context.WithTimeout(context.Background(), time.Second)
	defer flushCancel()
	require.NoError(t, em.Flush(flushCtx))
}

// TestEmitter_CloseDeadlineWithoutSpool: with the store down and no spool, Close gives up at
// its deadline and says how many events it dropped.
func TestEmitter_CloseDeadlineWithoutSpool(t *testing.T) {
	t.Parallel()
	f := startWrite(t)
	f.stop()
	var errs errorLog
	em, err := client.NewEmitter(newClient(t, client.Config{URL: f.url(), MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}),
		client.EmitterConfig{OnError: errs.add})
	require.NoError(t, err)
	for i := range 30 {
		require.NoError(t, em.Emit(event(t, i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err = em.Close(ctx)
	require.ErrorContains(t, err, "30 events were not delivered: 0 refused by the store, 30 undelivered at close")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.EqualValues(t, 30, em.Stats().Dropped[client.DroppedUndelivered])
	var ids int
	for _, e := range errs.all() {
		var de *client.DeliveryError
		require.ErrorAs(t, e, &de)
		ids += len(de.EventIDs)
	}
	require.Equal(t, 30, ids, "every dropped event is reported")
}

// TestEmitter_RefusedEventsReported: the store refuses an invalid event; the Emitter reports
// it, does not retry it, and still delivers the valid events of its batch.
func TestEmitter_RefusedEventsReported(t *testing.T) {
	t.Parallel()
	f := startWrite(t)
	var errs errorLog
	em, err := client.NewEmitter(newClient(t, client.Config{URL: f.url()}), client.EmitterConfig{BatchSize: 10, MaxBatchAge: time.Hour, OnError: errs.add})
	require.NoError(t, err)
	var good []string
	var badID string
	for i := range 10 {
		in := event(t, i)
		if i == 4 {
			outcome := "ok" // not an outcome: the store refuses the event
			in.EventOutcome = &outcome
			badID = *in.EventID
		} else {
			good = append(good, *in.EventID)
		}
		require.NoError(t, em.Emit(in))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.ErrorContains(t, em.Close(ctx), "1 events were not delivered: 1 refused by the store")
	ours, total := f.rows(t, good)
	require.Equal(t, 9, ours)
	require.Equal(t, 9, total)
	reported := errs.all()
	require.Len(t, reported, 1)
	var de *client.DeliveryError
	require.ErrorAs(t, reported[0], &de)
	require.Equal(t, []string{badID}, de.EventIDs)
	require.Equal(t, http.StatusBadRequest, de.Status)
	require.Equal(t, []client.Problem{{EventID: badID, Field: "event_outcome", Message: `"ok" is not one of success, failure, pending, unknown`}}, de.Problems)
	s := em.Stats()
	require.EqualValues(t, 1, s.Dropped[client.DroppedRejected])
	require.Zero(t, s.Retried, "a refused event is not retried")
}

// TestEmitter_BearerToken: the token is sent; a wrong one is a 401, reported and not retried.
func TestEmitter_BearerToken(t *testing.T) {
	t.Parallel()
	tokens := filepath.Join(t.TempDir(), "tokens.yaml")
	require.NoError(t, os.WriteFile(tokens, []byte("tokens:\n  - {principal: gateway, roles: [writer], token: writer-token}\n"), 0o600))
	az, err := auth.NewStatic(tokens)
	require.NoError(t, err)
	f := startWrite(t, write.WithAuthorizer(az, nil))

	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("writer-token\n"), 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	in := event(t, 1)
	require.NoError(t, newClient(t, client.Config{URL: f.url(), TokenFile: tokenFile}).Send(ctx, in))
	var submittedBy string
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT submitted_by FROM audit_events WHERE event_id = $1`, *in.EventID).Scan(&submittedBy))
	require.Equal(t, "gateway", submittedBy)

	var errs errorLog
	em, err := client.NewEmitter(newClient(t, client.Config{URL: f.url(), Token: "stolen"}), client.EmitterConfig{OnError: errs.add})
	require.NoError(t, err)
	require.NoError(t, em.Emit(event(t, 2)))
	require.Error(t, em.Close(ctx))
	var de *client.DeliveryError
	require.Len(t, errs.all(), 1)
	require.ErrorAs(t, errs.all()[0], &de)
	require.Equal(t, http.StatusUnauthorized, de.Status)
	require.Zero(t, em.Stats().Retried)
}

// TestEmitter_RateLimited: the store's 429 answers are retried after their Retry-After, and
// every event arrives once.
func TestEmitter_RateLimited(t *testing.T) {
	t.Parallel()
	f := startWrite(t, write.WithRateLimiter(auth.NewRateLimiter(400, 100, 0))) // refused at once, never held
	var errs errorLog
	em, err := client.NewEmitter(newClient(t, client.Config{URL: f.url(), MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}),
		client.EmitterConfig{BatchSize: 100, OnError: errs.add})
	require.NoError(t, err)
	// Built first, then emitted at once: ten batches ready together, far over the limit
	// however slowly this machine builds events.
	var ids []string
	var events []*audit.Input
	for i := range 1000 {
		in := event(t, i)
		ids = append(ids, *in.EventID)
		events = append(events, in)
	}
	for _, in := range events {
		require.NoError(t, em.Emit(in))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, em.Close(ctx))
	require.Empty(t, errs.all())
	ours, total := f.rows(t, ids)
	require.Equal(t, 1000, ours)
	require.Equal(t, 1000, total)
	require.Positive(t, f.answered(http.StatusTooManyRequests))
	require.Positive(t, em.Stats().Retried)
}

// TestClient_Send: synchronous sends, duplicates, and refused events named per field while
// the others are stored.
func TestClient_Send(t *testing.T) {
	t.Parallel()
	f := startWrite(t)
	c := newClient(t, client.Config{URL: f.url() + "/"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// An event without id or timestamp gets both, so the caller can refer to it and a retry
	// is a duplicate.
	bare := &audit.Input{EventType: ptr("billing.invoice.sent"), EventOutcome: ptr("success"), CorrelationID: ptr("inv-7"),
		EventData: []byte(`{"invoice":"INV-7"}`)}
	require.NoError(t, c.Send(ctx, bare, event(t, 1), event(t, 2)))
	require.NotNil(t, bare.EventID)
	require.EqualValues(t, 7, uuid.MustParse(*bare.EventID).Version())
	require.NotNil(t, bare.EventTimestamp)
	require.NoError(t, c.Send(ctx, bare), "sent again: a duplicate")
	_, total := f.rows(t, nil)
	require.Equal(t, 3, total)

	bad := event(t, 3)
	bad.Severity = ptr("urgent")
	good := event(t, 4)
	err := c.Send(ctx, good, bad)
	var de *client.DeliveryError
	require.ErrorAs(t, err, &de)
	require.Equal(t, []string{*bad.EventID}, de.EventIDs)
	require.Equal(t, "severity", de.Problems[0].Field)
	require.Contains(t, err.Error(), "severity")
	ours, _ := f.rows(t, []string{*good.EventID})
	require.Equal(t, 1, ours, "the valid event of the batch is stored")

	// More events than one request takes go in several.
	var many []*audit.Input
	var ids []string
	for i := range 2500 {
		in := event(t, 100+i)
		many = append(many, in)
		ids = append(ids, *in.EventID)
	}
	require.NoError(t, c.Send(ctx, many...))
	ours, _ = f.rows(t, ids)
	require.Equal(t, 2500, ours)

	// A store that does not answer: Send gives up when ctx ends, and says so.
	f.stop()
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	require.ErrorIs(t, c.Send(short, event(t, 9)), context.DeadlineExceeded)
}

// TestClient_CloudEvents sends through the CloudEvents transport to the write function's
// trigger path, as a Knative broker would deliver: every field the mapping carries arrives.
func TestClient_CloudEvents(t *testing.T) {
	t.Parallel()
	f := startWrite(t)
	c := newClient(t, client.Config{URL: f.url(), Transport: client.CloudEvents})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	parent := uuid.Must(uuid.NewV7())
	in, err := audit.NewExecutionEvent("action.completed").
		WithCorrelationID("rr-ce-1").
		WithOutcome("failure").
		WithActor("controller", "execution-controller").
		WithResource("Deployment", "production/checkout").
		WithSeverity("high").
		WithNamespace("production").
		WithClusterID("prod-eu-west-1").
		WithParentEventID(parent).
		WithTrace("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7").
		WithAction("restart_pod", "kubectl rollout restart deployment/checkout").
		Build()
	require.NoError(t, err)
	require.NoError(t, c.Send(ctx, in))
	require.NoError(t, c.Send(ctx, in), "a redelivery is a duplicate")

	e, err := store.New(f.pool).GetEvent(ctx, uuid.MustParse(*in.EventID))
	require.NoError(t, err)
	require.Equal(t, "execution.action.completed", e.EventType)
	require.Equal(t, "failure", e.EventOutcome)
	require.Equal(t, "rr-ce-1", e.CorrelationID)
	require.Equal(t, "controller", e.ActorType)
	require.Equal(t, "execution-controller", e.ActorID)
	require.Equal(t, "Deployment", *e.ResourceType)
	require.Equal(t, "production/checkout", *e.ResourceID)
	require.Equal(t, "high", *e.Severity)
	require.Equal(t, "production", *e.Namespace)
	require.Equal(t, "prod-eu-west-1", *e.ClusterID)
	require.Equal(t, parent, *e.ParentEventID)
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", *e.TraceID)
	require.Equal(t, "00f067aa0ba902b7", *e.SpanID)
	require.JSONEq(t, string(in.EventData), string(e.EventData))
	ts, err := time.Parse(time.RFC3339Nano, *in.EventTimestamp)
	require.NoError(t, err)
	require.True(t, ts.Truncate(time.Microsecond).Equal(e.EventTimestamp))
	_, total := f.rows(t, nil)
	require.Equal(t, 1, total)

	// Fields a CloudEvent cannot carry are refused before anything is sent.
	withName, err := audit.NewExecutionEvent("action.completed").WithCorrelationID("rr-ce-2").WithAction("x", "").
		WithResourceName("checkout").WithDuration(time.Second).Build()
	require.NoError(t, err)
	err = c.Send(ctx, withName)
	require.ErrorContains(t, err, "resource_name, duration_ms")
	em, err := client.NewEmitter(c, client.EmitterConfig{})
	require.NoError(t, err)
	require.ErrorContains(t, em.Emit(withName), "REST transport")

	// The Emitter over CloudEvents: a batch is many requests, each event stored once.
	var ids []string
	for i := range 300 {
		in := event(t, i)
		ids = append(ids, *in.EventID)
		require.NoError(t, em.Emit(in))
	}
	require.NoError(t, em.Close(ctx))
	ours, _ := f.rows(t, ids)
	require.Equal(t, 300, ours)
}

func TestNew_Config(t *testing.T) {
	t.Parallel()
	for _, cfg := range []client.Config{
		{},
		{URL: "auditstore:8080"},
		{URL: "http://x", Transport: "grpc"},
		{URL: "http://x", MinBackoff: time.Second, MaxBackoff: time.Millisecond},
	} {
		_, err := client.New(cfg)
		require.Error(t, err, "%+v", cfg)
	}
	c := newClient(t, client.Config{URL: "http://x"})
	for _, cfg := range []client.EmitterConfig{
		{BatchSize: 1001},
		{BatchSize: 100, BufferSize: 10},
		{Senders: 100},
		{BufferBytes: 10},
	} {
		_, err := client.NewEmitter(c, cfg)
		require.Error(t, err, "%+v", cfg)
	}
}

func ptr(s string) *string { return &s }
