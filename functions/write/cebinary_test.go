package write

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// The binary-mode fast path gives exactly what the SDK's decoding gives, for every event it
// takes; whatever it declines, the SDK decodes (and refuses) as before. The common events of
// a broker and of the kubernaut clients are taken.
func TestBinaryCloudEvent_AsSDK(t *testing.T) {
	t.Parallel()
	base := func() http.Header {
		h := http.Header{}
		for k, v := range map[string]string{"Content-Type": "application/json", "Ce-Specversion": "1.0",
			"Ce-Type": "gateway.signal.received", "Ce-Source": "gateway", "Ce-Id": "0191e3b2-7c1a-7abc-8def-0123456789ab",
			"Ce-Correlationid": "rr-1", "Ce-Subject": "fp-1", "Ce-Outcome": "success", "Ce-Resourcetype": "Signal",
			"Ce-Namespace": "production", "Ce-Severity": "info"} {
			h.Set(k, v)
		}
		return h
	}
	body := []byte(`{"version":"1.0","service":"gateway","payload":{"a":1}}`)
	type change func(h http.Header) []byte
	set := func(k, v string) change {
		return func(h http.Header) []byte { h[k] = []string{v}; return body }
	}
	del := func(k string) change {
		return func(h http.Header) []byte { delete(h, k); return body }
	}
	taken := map[string]bool{}
	for _, tc := range []struct {
		name string
		c    change
		fast bool // the fast path must take it
	}{
		{"common", func(http.Header) []byte { return body }, true},
		{"no body", func(http.Header) []byte { return nil }, true},
		{"no content type", del("Content-Type"), true},
		{"time", set("Ce-Time", "2026-12-07T19:54:20.123456+01:00"), true},
		{"zero time", set("Ce-Time", "0001-01-01T00:00:00Z"), true},
		{"bad time", set("Ce-Time", "yesterday"), false},
		{"padded time", set("Ce-Time", " 2026-12-07T19:54:20Z"), false},
		{"upper-case uuid id", set("Ce-Id", "0191E3B2-7C1A-7ABC-8DEF-0123456789AB"), true},
		{"other id", set("Ce-Id", "delivery-42"), true},
		{"padded id", set("Ce-Id", "  delivery-42 "), true},
		{"blank id", set("Ce-Id", "  "), false},
		{"no id", del("Ce-Id"), false},
		{"path source", set("Ce-Source", "/apis/v1/namespaces/prod"), true},
		{"urn source", set("Ce-Source", "urn:kubernaut:gateway"), true},
		{"url source", set("Ce-Source", "https://gateway.example/x?y=1#z"), true},
		{"escaped source", set("Ce-Source", "a%20b/c d"), true},
		{"bad source", set("Ce-Source", "%zz"), false},
		{"bad scheme source", set("Ce-Source", "1http://x"), false},
		{"blank source", set("Ce-Source", " "), true},
		{"empty source", set("Ce-Source", ""), false},
		{"no source", del("Ce-Source"), false},
		{"padded type", set("Ce-Type", " gateway.signal.received "), true},
		{"blank type", set("Ce-Type", " "), false},
		{"blank subject", set("Ce-Subject", "  "), true},
		{"padded subject", set("Ce-Subject", " fp-1 "), true},
		{"no correlationid", del("Ce-Correlationid"), true},
		{"actor", set("Ce-Actorid", "system:serviceaccount:prod:gw"), true},
		{"actor type", set("Ce-Actortype", "user"), true},
		{"cluster and parent", func(h http.Header) []byte {
			h.Set("Ce-Clusterid", "eu-1")
			h.Set("Ce-Parenteventid", "0191e3b2-7c1a-7abc-8def-0123456789ac")
			return body
		}, true},
		{"traceparent", set("Ce-Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), true},
		{"bad traceparent", set("Ce-Traceparent", "00-nope"), true},
		{"knative extensions", func(h http.Header) []byte {
			h.Set("Ce-Knativearrivaltime", "2026-12-07T19:54:20Z")
			h.Set("Ce-Knativebrokerttl", "255")
			return body
		}, true},
		{"many extensions", func(h http.Header) []byte {
			for _, n := range []string{"A1", "B2", "C3", "D4", "E5", "F6", "G7", "H8", "I9"} {
				h.Set("Ce-"+n, n)
			}
			return body
		}, true},
		{"empty extension", set("Ce-Outcome", ""), true},
		{"extension with a dash", set("Ce-Foo-Bar", "x"), false},
		{"extension with an underscore", set("Ce-Foo_bar", "x"), false},
		{"attribute as extension", set("Ce-Datacontenttype", "application/json"), false},
		{"upper-case attribute", func(h http.Header) []byte { h["Ce-ID"] = []string{"x"}; return body }, false},
		{"upper-case extension", func(h http.Header) []byte {
			delete(h, "Ce-Outcome")
			h["Ce-OUTCOME"] = []string{"failure"}
			return body
		}, true},
		{"extension twice", func(h http.Header) []byte {
			h["Ce-OUTCOME"] = []string{"failure"}
			h["Ce-outcome"] = []string{"x"}
			return body
		}, false},
		{"lower-case key ignored", func(h http.Header) []byte { h["ce-outcome"] = []string{"failure"}; return body }, true},
		{"dataschema", set("Ce-Dataschema", "https://schemas.example/x"), false},
		{"json with charset", set("Content-Type", "application/json; charset=utf-8"), false},
		{"text data", set("Content-Type", "text/plain"), false},
		{"structured", set("Content-Type", "application/cloudevents+json"), false},
		{"version 0.3", set("Ce-Specversion", "0.3"), false},
		{"version 2", set("Ce-Specversion", "2.0"), false},
		{"two values", func(h http.Header) []byte { h["Ce-Subject"] = []string{"fp-1", "fp-2"}; return body }, true},
	} {
		h := base()
		b := tc.c(h)
		in, tr, errs, ok := binaryCloudEvent(h.Clone(), b)
		require.Equal(t, tc.fast, ok, tc.name)
		if !ok {
			continue
		}
		taken[tc.name] = true
		wantIn, wantTr, wantErrs := sdkCloudEvents(context.Background(), h, b)
		require.Len(t, wantIn, 1, tc.name)
		require.Equal(t, wantIn[0], in, tc.name)
		require.Equal(t, string(wantIn[0].EventData), string(in.EventData), tc.name)
		require.Equal(t, wantTr[0], tr, tc.name)
		require.Equal(t, wantErrs, errs, tc.name)
	}
	require.True(t, taken["common"])
}
