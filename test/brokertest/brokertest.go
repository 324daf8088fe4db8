// Package brokertest is a test double of a Knative broker's delivery to one Trigger's
// subscriber, as Knative Eventing's dispatcher does it: each event is sent alone in binary
// content mode, with an OIDC token only when sender identity is on; a 404, 408, 409, 429, any
// 5xx or no answer at all is retried, up to Retry times, waiting BackoffDelay × 2^n before the
// n-th retry (exponential); a 2xx ends the delivery; anything else, or the last failure, sends
// the event to the dead-letter sink with the knativeerrorcode, knativeerrordest and
// knativeerrordata extensions, itself retried the same way. An event whose dead letter is not
// taken either is lost, and counted so.
//
// What it does not do: persist anything (an event accepted here is held in memory until it is
// delivered, as the in-memory channel does), honour Retry-After (Knative does only with its
// delivery-retryafter feature), time a delivery out, or filter by type (every event goes to
// the one subscriber).
package brokertest

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// Options configure a Broker.
type Options struct {
	// Subscriber is the Trigger's subscriber URL; DeadLetterSink the broker's dead-letter sink.
	Subscriber, DeadLetterSink string
	// Token, when set, is the OIDC token sent as Authorization: Bearer (sender identity on);
	// unset, no Authorization header is sent (Knative's default).
	Token string
	// Retry is how many times a failed delivery is retried; BackoffDelay the first wait.
	Retry        int
	BackoffDelay time.Duration
	// Workers bounds the requests in flight (default 16).
	Workers int
}

// Stats count what happened to the events the broker accepted.
type Stats struct {
	// Accepted events were taken by the ingress; Delivered got a 2xx from the subscriber;
	// DeadLettered were taken by the dead-letter sink; Lost by neither.
	Accepted, Delivered, DeadLettered, Lost int64
	// Attempts are the requests to the subscriber, Retries those after a first failure.
	Attempts, Retries int64
	// Codes counts the subscriber's answers by status (0: no answer).
	Codes map[int]int64
}

// Broker delivers what it accepted until Close.
type Broker struct {
	opts   Options
	client *http.Client
	// inflight bounds the requests at once; an event waiting for its next retry holds none.
	inflight chan struct{}
	wg       sync.WaitGroup

	accepted, delivered, deadLettered, lost, attempts, retries atomic.Int64
	mu                                                         sync.Mutex
	codes                                                      map[int]int64
}

// New returns a broker that delivers as opts say.
func New(opts Options) *Broker {
	if opts.Workers == 0 {
		opts.Workers = 16
	}
	return &Broker{opts: opts, client: &http.Client{}, inflight: make(chan struct{}, opts.Workers), codes: map[int]int64{}}
}

// Send is the broker's ingress: the event is accepted (a producer got 202) and will be
// delivered.
func (b *Broker) Send(ev event.Event) {
	b.accepted.Add(1)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.deliver(ev)
	}()
}

// Delivered is how many events the subscriber has taken so far.
func (b *Broker) Delivered() int64 { return b.delivered.Load() }

// Close returns once every accepted event was delivered, dead-lettered or lost; nothing may
// be sent after it.
func (b *Broker) Close() Stats {
	b.wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	codes := make(map[int]int64, len(b.codes))
	for k, v := range b.codes {
		codes[k] = v
	}
	return Stats{Accepted: b.accepted.Load(), Delivered: b.delivered.Load(), DeadLettered: b.deadLettered.Load(),
		Lost: b.lost.Load(), Attempts: b.attempts.Load(), Retries: b.retries.Load(), Codes: codes}
}

// retriable are the answers Knative's dispatcher retries, besides every 5xx and no answer.
var retriable = map[int]bool{http.StatusNotFound: true, http.StatusRequestTimeout: true, http.StatusConflict: true, http.StatusTooManyRequests: true}

func (b *Broker) deliver(ev event.Event) {
	code, body, err := b.send(b.opts.Subscriber, ev, true)
	if err == nil {
		b.delivered.Add(1)
		return
	}
	dead := ev.Clone()
	dead.SetExtension("knativeerrordest", b.opts.Subscriber)
	dead.SetExtension("knativeerrorcode", strconv.Itoa(code))
	if len(body) > 0 {
		dead.SetExtension("knativeerrordata", base64.StdEncoding.EncodeToString(body))
	}
	if _, _, err := b.send(b.opts.DeadLetterSink, dead, false); err != nil {
		b.lost.Add(1)
		return
	}
	b.deadLettered.Add(1)
}

// send delivers ev to url with retries; it returns the last answer's status and body, and an
// error unless it was a 2xx.
func (b *Broker) send(url string, ev event.Event, count bool) (int, []byte, error) {
	var code int
	var body []byte
	var err error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			time.Sleep(b.opts.BackoffDelay * time.Duration(1<<(attempt-1)))
			if count {
				b.retries.Add(1)
			}
		}
		code, body, err = b.post(url, ev)
		if count {
			b.attempts.Add(1)
			b.mu.Lock()
			b.codes[code]++
			b.mu.Unlock()
		}
		if err == nil && code/100 == 2 {
			return code, body, nil
		}
		if err == nil {
			err = fmt.Errorf("%s answered %d", url, code)
		}
		if attempt == b.opts.Retry || (code != 0 && code < 500 && !retriable[code]) {
			return code, body, err
		}
	}
}

func (b *Broker) post(url string, ev event.Event) (int, []byte, error) {
	b.inflight <- struct{}{}
	defer func() { <-b.inflight }()
	ctx := context.Background()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return 0, nil, err
	}
	// Binary content mode: attributes as Ce-* headers, data as the body.
	if err := cehttp.WriteRequest(binding.WithForceBinary(ctx), binding.ToMessage(&ev), req); err != nil {
		return 0, nil, err
	}
	if b.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+b.opts.Token)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return resp.StatusCode, bytes.Clone(body), nil
}
