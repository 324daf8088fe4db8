package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/auditstore/auditstore/shared/audit"
	json "github.com/segmentio/encoding/json"
)

// restTransport posts JSON batches (README "Write API", shape 2): stored atomically, so a batch
// with refused events stores nothing, and the others are sent again without them.
type restTransport struct {
	c   *Client
	url string
}

func (t *restTransport) check(*audit.Input) error { return nil }

var jsonHeader = http.Header{"Content-Type": {"application/json"}}

func (t *restTransport) deliver(ctx context.Context, batch []pending) delivery {
	size := 2 + len(batch)
	for _, p := range batch {
		size += len(p.raw)
	}
	body := make([]byte, 0, size)
	body = append(body, '[')
	for i, p := range batch {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, p.raw...)
	}
	body = append(body, ']')

	code, header, answer, err := t.c.post(ctx, t.url, body, jsonHeader)
	if err != nil {
		d := newDelivery(len(batch), retry)
		d.err = err
		return d
	}
	switch {
	case code == http.StatusOK || code == http.StatusCreated:
		return newDelivery(len(batch), delivered)
	case code == http.StatusRequestEntityTooLarge && len(batch) > 1:
		// Larger than the store takes (a proxy may set a lower limit): halves, one after
		// the other.
		first := t.deliver(ctx, batch[:len(batch)/2])
		second := t.deliver(ctx, batch[len(batch)/2:])
		first.status = append(first.status, second.status...)
		first.problems = append(first.problems, second.problems...)
		first.err = cmpErr(first.err, second.err)
		first.retryAfter = max(first.retryAfter, second.retryAfter)
		first.httpStatus, first.detail = max(first.httpStatus, second.httpStatus), first.detail+second.detail
		return first
	case retryable(code):
		d := newDelivery(len(batch), retry)
		d.err = fmt.Errorf("the store answered %d %s", code, http.StatusText(code))
		d.retryAfter = retryAfter(header)
		return d
	}
	// Any other answer is the request's own fault: refused, and not sent again, except the
	// events of a batch that were refused only for their neighbours' faults.
	var p problemBody
	_ = json.Unmarshal(answer, &p) // a body that is no problem leaves the detail empty
	d := newDelivery(len(batch), refused)
	d.httpStatus, d.detail = code, p.Detail
	if code == http.StatusBadRequest || code == http.StatusConflict {
		named := false
		for i := range d.status {
			d.status[i] = retry
		}
		for _, e := range p.Errors {
			if e.Index != nil && *e.Index >= 0 && *e.Index < len(batch) {
				i := *e.Index
				d.status[i] = refused
				d.problems[i] = append(d.problems[i], Problem{EventID: batch[i].id, Field: e.Field, Message: e.Message})
				named = true
			}
		}
		if named {
			d.err = errResend
			return d
		}
		for i := range d.status {
			d.status[i] = refused
		}
	}
	// Field errors without an index concern the whole request (or its one event).
	for _, e := range p.Errors {
		if e.Index == nil {
			for i := range batch {
				d.problems[i] = append(d.problems[i], Problem{EventID: batch[i].id, Field: e.Field, Message: e.Message})
			}
		}
	}
	return d
}

// cmpErr prefers a failure to errResend: events that failed must wait before they go again.
func cmpErr(a, b error) error {
	if a == nil || (errors.Is(a, errResend) && b != nil) {
		return b
	}
	return a
}
