package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/client"
)

// BenchmarkEmit measures what Emit costs: a gateway event of about 800 bytes gets its UUIDv7
// and timestamp, is encoded and queued, for an Emitter sending to the real write function.
// The timer stops while Flush empties the buffer, so it never fills.
//
//   - alone: batches of 1000 and a buffer of 1000, flushed after every 1000 events, so no
//     batch is sent while Emit is timed: the caller's own cost.
//   - sending: batches of 100 go out while Emit is timed (flushed every 5000 events), as in a
//     service; ns/op and allocs/op then include the senders' share of the process's work.
func BenchmarkEmit(b *testing.B) {
	f := startWrite(b)
	pool := make([]*audit.Input, 1000)
	for i := range pool {
		pool[i] = event(b, i)
		pool[i].EventID, pool[i].EventTimestamp = nil, nil // made by Emit, as for any event without them
	}
	for _, bc := range []struct {
		name  string
		cfg   client.EmitterConfig
		flush int
	}{
		{"alone", client.EmitterConfig{BatchSize: 1000, BufferSize: 1000, MaxBatchAge: time.Hour}, 1000},
		{"sending", client.EmitterConfig{BufferSize: 10_000}, 5000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			em, err := client.NewEmitter(newClient(b, client.Config{URL: f.url()}), bc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := em.Emit(pool[i%len(pool)]); err != nil {
					b.Fatal(err)
				}
				if i++; i%bc.flush == 0 {
					b.StopTimer()
					if err := em.Flush(ctx); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			}
			b.StopTimer()
			if err := em.Close(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}
