package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/auditstore/auditstore/functions/write"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/client"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
)

// exampleStore starts the real write function over a database of its own, once, for the
// examples: they run as they would against a deployed auditstore.
var exampleStore = sync.OnceValue(func() string {
	ctx := context.Background()
	dbURL, err := pgtest.Database(ctx)
	if err != nil {
		log.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		log.Fatal(err)
	}
	h, err := write.New(store.New(pool), writeConfig(), nil)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Routes(mux)
	return httptest.NewServer(mux).URL
})

// A service emits events on its hot path and closes the Emitter on shutdown, which sends what
// is still buffered.
func Example() {
	c, err := client.New(client.Config{URL: exampleStore()}) // e.g. http://auditstore-write.auditstore.svc
	if err != nil {
		log.Fatal(err)
	}
	em, err := client.NewEmitter(c, client.EmitterConfig{})
	if err != nil {
		log.Fatal(err)
	}

	for _, fp := range []string{"a1b2", "c3d4", "e5f6"} {
		ev, err := audit.NewGatewayEvent("signal.received").
			WithCorrelationID("rr-2026-001").
			WithSignalType("prometheus").
			WithFingerprint(fp).
			WithAlertName("KubePodCrashLooping", "critical").
			Build()
		if err != nil {
			log.Print(err) // names every missing or invalid field
			continue
		}
		if err := em.Emit(ev); err != nil {
			log.Print(err) // the buffer is full: the event was dropped
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := em.Close(ctx); err != nil {
		log.Print(err)
	}
	s := em.Stats()
	fmt.Printf("emitted %d, sent %d, buffered %d\n", s.Emitted, s.Sent, s.Buffered)
	// Output: emitted 3, sent 3, buffered 0
}

// Send is for code that must know the event is stored before it goes on (a job, a CLI).
func ExampleClient_Send() {
	c, err := client.New(client.Config{URL: exampleStore()})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	ok, _ := audit.NewWorkflowEvent("workflow.completed").
		WithCorrelationID("rr-2026-002").
		WithWorkflowID("workflow-001").
		Build()
	err = c.Send(ctx, ok)
	fmt.Println("stored:", err == nil)

	// An event the store refuses is named with its fields; a builder would have refused it
	// before it left the process.
	outcome := "done"
	bad := &audit.Input{EventType: ok.EventType, EventOutcome: &outcome, CorrelationID: ok.CorrelationID, EventData: ok.EventData}
	var de *client.DeliveryError
	if errors.As(c.Send(ctx, ok, bad), &de) {
		for _, p := range de.Problems {
			fmt.Println(p.Field, p.Message)
		}
	}
	// Output:
	// stored: true
	// event_outcome "done" is not one of success, failure, pending, unknown
}
