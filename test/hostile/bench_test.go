package hostile_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/web"
	"github.com/auditstore/auditstore/test/hostile"
	"github.com/stretchr/testify/require"
)

// BenchmarkRefuse measures the time to refuse bodies nested deep and bodies of growing size
// (the deepest JSON of that size), each over HTTP, next to storing a valid event of 240 KB in
// the same run: compare the ns/op and the MB/s columns (a linear cost keeps MB/s flat).
//
//	go test ./test/hostile -run '^$' -bench Refuse -benchtime 20x
func BenchmarkRefuse(b *testing.B) {
	// What is measured is the cost of refusing, not the pacing of a client's refusals.
	f := setup(b, func(c *web.ServeConfig) { c.RefusalsPerSec, c.RefusalBurst = 1e6, 1e6 })
	events := f.srv.URL + "/api/v1/audit/events"
	cases := []struct {
		name   string
		body   func(i int) []byte
		status int
	}{
		{"valid-240KB", func(i int) []byte { return hostile.Event(fmt.Sprint("bench-", i), 240_000) }, http.StatusCreated},
		{"depth-1k", func(int) []byte { return hostile.DeepEvent(1000) }, http.StatusBadRequest},
		{"depth-10k", func(int) []byte { return hostile.DeepEvent(10_000) }, http.StatusBadRequest},
		{"depth-40k", func(int) []byte { return hostile.DeepEvent(40_000) }, http.StatusBadRequest},
		{"size-64KB", func(int) []byte { return hostile.DeepArray(64 << 10) }, http.StatusBadRequest},
		{"size-1MB", func(int) []byte { return hostile.DeepArray(1 << 20) }, http.StatusBadRequest},
		{"size-5MB", func(int) []byte { return hostile.DeepArray(5<<20 - 2) }, http.StatusBadRequest},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			bodies := make([][]byte, 0, b.N)
			for i := range b.N {
				bodies = append(bodies, tc.body(i))
			}
			b.SetBytes(int64(len(bodies[0])))
			b.ResetTimer()
			for i := range b.N {
				status, body, err := hostile.Post(f.client, events, hostile.WriterToken, bodies[i])
				if err != nil || status != tc.status {
					b.Fatalf("%d %s %v", status, body, err)
				}
			}
		})
	}
}

// BenchmarkWriterUnderAttack measures a normal writer's latency (one event at a time, p50 and
// p99 over 8 s) alone, then while 4 hostile senders of one kind run, kind by kind: 10,001 query
// parameters, event_data 40,000 levels deep, 5 MB bodies nested to the end, and bodies sent a
// byte every 100 ms. The senders run in a process of their own, from another address, as an
// attacker would: their own CPU and garbage are not the server's. The ratios to the writer
// alone are reported.
//
//	go test ./test/hostile -run '^$' -bench WriterUnderAttack -benchtime 1x
func BenchmarkWriterUnderAttack(b *testing.B) {
	f := setup(b, nil)
	const window = 8 * time.Second
	events := f.srv.URL + "/api/v1/audit/events"
	for range b.N {
		alone := writerLatency(b, f, events, window, "")
		b.ReportMetric(ms(alone[0]), "alone-p50-ms")
		b.ReportMetric(ms(alone[1]), "alone-p99-ms")
		for _, kind := range []string{"params-10001", "depth-40k", "size-5MB", "slow-body"} {
			under := writerLatency(b, f, events, window, kind)
			b.ReportMetric(ms(under[0]), kind+"-p50-ms")
			b.ReportMetric(ms(under[1]), kind+"-p99-ms")
			b.ReportMetric(float64(under[0])/float64(alone[0]), kind+"-p50-x")
			b.ReportMetric(float64(under[1])/float64(alone[1]), kind+"-p99-x")
		}
	}
}

// TestAttacker is the attacking process of BenchmarkWriterUnderAttack: 4 senders of the kind
// HOSTILE_ATTACK names, against the server at HOSTILE_ATTACK_ADDR, until the process is
// stopped. Run any other way it has nothing to do.
func TestAttacker(t *testing.T) {
	kind, addr := os.Getenv("HOSTILE_ATTACK"), os.Getenv("HOSTILE_ATTACK_ADDR")
	if kind == "" {
		t.Skip("the attacking process of BenchmarkWriterUnderAttack")
	}
	events := "http://" + addr + "/api/v1/audit/events"
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext:         (&net.Dialer{LocalAddr: &net.TCPAddr{IP: attacker}}).DialContext,
		MaxIdleConnsPerHost: 16,
	}}
	send := map[string]func() error{
		"params-10001": func() error {
			_, _, err := hostile.Get(client, events+"?"+hostile.ManyParams("correlation_id", "x", 10001), hostile.ReaderToken)
			return err
		},
		"depth-40k": func() error {
			_, _, err := hostile.Post(client, events, hostile.WriterToken, hostile.DeepEvent(40_000))
			return err
		},
		"size-5MB": func() error {
			_, _, err := hostile.Post(client, events, hostile.WriterToken, hostile.DeepArray(5<<20-2))
			return err
		},
		"slow-body": func() error {
			_, err := hostile.SlowBody(addr, attacker, 50, 100*time.Millisecond)
			return err
		},
	}[kind]
	require.NotNil(t, send, "unknown attack %q", kind)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if err := send(); err != nil {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// writerLatency sends one valid event after another for window, while a process of its own
// runs the attack kind (none when ""), and returns the writer's p50 and p99.
func writerLatency(b *testing.B, f *fixture, url string, window time.Duration, kind string) [2]time.Duration {
	if kind != "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAttacker$", "-test.count=1")
		cmd.Env = append(os.Environ(), "HOSTILE_ATTACK="+kind, "HOSTILE_ATTACK_ADDR="+f.srv.Addr)
		require.NoError(b, cmd.Start())
		defer func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}()
		time.Sleep(2 * time.Second) // let the attack reach its pace
	}
	var lat []time.Duration
	end := time.Now().Add(window)
	for i := 0; time.Now().Before(end); i++ {
		start := time.Now()
		status, body, err := hostile.Post(f.client, url, hostile.WriterToken, hostile.Event(fmt.Sprint("w-", kind, i), 500))
		require.NoError(b, err)
		require.Equal(b, http.StatusCreated, status, "%s", body)
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	return [2]time.Duration{lat[len(lat)/2], lat[len(lat)*99/100]}
}
