package audit_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/audit/audittest"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// builders make one fully filled event of every service.
var builders = map[string]func() (*audit.Input, error){
	"gateway": func() (*audit.Input, error) {
		return audit.NewGatewayEvent("signal.received").
			WithCorrelationID("rr-2026-001").
			WithSignalType("prometheus").
			WithFingerprint("a1b2c3d4").
			WithAlertName("KubePodCrashLooping", "critical").
			WithSignalTarget("production", "prod-eu-west-1").
			WithLabels(map[string]string{"app": "checkout"}, map[string]string{"summary": "crash looping"}).
			WithStartsAt(time.Now().Add(-time.Minute)).
			WithDeduplication(true, 3).
			WithStormDetected(false).
			WithRiskScore(40).
			WithRemediationRequest("rr-2026-001").
			WithSourcePayload(map[string]any{"labels": map[string]string{"alertname": "KubePodCrashLooping"}}).
			WithResource("Signal", "fp-a1b2c3d4").
			WithNamespace("production").
			WithSeverity("high").
			Build()
	},
	"aianalysis": func() (*audit.Input, error) {
		return audit.NewAIAnalysisEvent("analysis.completed").
			WithCorrelationID("rr-2026-001").
			WithLLM("anthropic", "claude").
			WithAnalysisType("root_cause_analysis").
			WithTokens(1500, 500).
			WithCost(0.04).
			WithConfidence(0.92).
			WithRiskScore(30).
			WithRootCause("memory leak", "restart pod", "raise memory limit").
			WithLLMDuration(1800*time.Millisecond).
			WithRetry(2, "llm_timeout").
			WithDuration(2300 * time.Millisecond).
			Build()
	},
	"workflow": func() (*audit.Input, error) {
		return audit.NewWorkflowEvent("workflow.completed").
			WithCorrelationID("rr-2026-001").
			WithWorkflowID("workflow-001").
			WithWorkflowVersion("3").
			WithWorkflowType("remediation").
			WithExecutionID("we-1").
			WithPhase("execution").
			WithStep(5, 5, "verify").
			WithStepResult("success", 5).
			WithParameters(map[string]string{"replicas": "5"}).
			Build()
	},
	"contextapi": func() (*audit.Input, error) {
		return audit.NewContextAPIEvent("query.completed").
			WithCorrelationID("rr-2026-001").
			WithQuery("incident_history", map[string]any{"namespace": "production", "limit": 10}).
			WithResultCount(42).
			WithCache(true, "incidents:production").
			WithDataSource("data_storage").
			Build()
	},
	"execution": func() (*audit.Input, error) {
		return audit.NewExecutionEvent("action.completed").
			WithCorrelationID("rr-2026-001").
			WithAction("scale_deployment", "kubectl scale deployment checkout --replicas=5").
			WithDryRun(false).
			WithExecutionID("we-1", "workflow-001").
			WithTarget("Deployment", "checkout", "production").
			WithTargetCluster("prod-eu-west-1").
			WithExitCode(0).
			WithSafetyCheck("rbac_permission", "passed").
			WithSafetyCheck("resource_exists", "passed").
			Build()
	},
	"datastorage": func() (*audit.Input, error) {
		return audit.NewDataStorageEvent("batch.written").
			WithCorrelationID("rr-2026-001").
			WithRecords(250, 212000).
			WithTable("audit_events", "audit_events_2557_2026_11").
			WithBatchID("b-1").
			WithQuery("SELECT 1").
			Build()
	},
}

// TestBuilders_ValidAgainstSchemas builds a full event of every service and checks it three
// ways: the store takes it, its event_data is a valid envelope, and its payload is valid
// against the service's published schema in its complete form.
func TestBuilders_ValidAgainstSchemas(t *testing.T) {
	t.Parallel()
	require.ElementsMatch(t, audit.Services(), keys(builders), "a builder for every registered schema")
	envelope := compile(t, "envelope", "")
	for service, build := range builders {
		in, err := build()
		require.NoError(t, err, service)

		e, errs := in.Prepare(audit.Defaults{Now: time.Now(), Principal: "writer", RetentionClasses: audit.DefaultRetentionClasses}, audit.DefaultLimits)
		require.Empty(t, errs, service)
		require.Equal(t, service, e.EventCategory)
		require.EqualValues(t, 7, e.EventID.Version(), "client-side UUIDv7")
		require.Equal(t, "service", e.ActorType)
		require.Equal(t, service, e.ActorID)
		require.WithinDuration(t, time.Now(), e.EventTimestamp, time.Minute)

		require.NoError(t, envelope.Validate(decode(t, in.EventData)), service)
		var data struct {
			Service string          `json:"service"`
			Status  string          `json:"status"`
			Payload json.RawMessage `json:"payload"`
		}
		require.NoError(t, json.Unmarshal(in.EventData, &data))
		require.Equal(t, service, data.Service)
		require.Equal(t, "success", data.Status)
		require.NoError(t, compile(t, service, "#/$defs/complete").Validate(decode(t, data.Payload)), service)
	}
}

func TestBuilders_EventTypes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		got                  func() (*audit.Input, error)
		eventType, operation string
	}{
		{builders["gateway"], "gateway.signal.received", "signal.received"},
		{builders["workflow"], "workflow.completed", "workflow.completed"},
		{func() (*audit.Input, error) {
			return audit.NewWorkflowEvent("step.completed").WithCorrelationID("c").WithWorkflowID("w").Build()
		}, "workflow.step.completed", "step.completed"},
	} {
		in, err := tc.got()
		require.NoError(t, err)
		require.Equal(t, tc.eventType, *in.EventType)
		d, err := audit.FromJSON(in.EventData)
		require.NoError(t, err)
		require.Equal(t, tc.operation, d.Operation)
	}
}

// TestBuilders_RefuseInvalid checks that every builder refuses what is missing or wrong, and
// names every field at once.
func TestBuilders_RefuseInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		build  func() (*audit.Input, error)
		fields []string
	}{
		{"gateway empty", audit.NewGatewayEvent("signal.received").Build,
			[]string{"correlation_id", "event_data.payload.fingerprint", "event_data.payload.signal_type"}},
		{"gateway wrong values", audit.NewGatewayEvent("Signal Received").WithCorrelationID("c").WithSignalType("prometheus").
			WithFingerprint("f").WithRiskScore(101).WithDeduplication(true, -1).WithSeverity("urgent").Build,
			[]string{"event_type", "severity", "event_data.payload.duplicate_count", "event_data.payload.risk_score"}},
		{"aianalysis", audit.NewAIAnalysisEvent("analysis.completed").WithCorrelationID("c").WithLLM("", "claude").
			WithConfidence(1.5).WithTokens(-1, 0).WithRetry(-1, "x").Build,
			[]string{"event_data.attempt"}}, // an encoding problem is reported before the rest
		{"aianalysis payload", audit.NewAIAnalysisEvent("analysis.completed").WithCorrelationID("c").WithLLM("", "claude").
			WithConfidence(1.5).WithTokens(-1, 0).Build,
			[]string{"event_data.payload.confidence", "event_data.payload.input_tokens", "event_data.payload.provider", "event_data.payload.tokens_used"}},
		{"workflow", audit.NewWorkflowEvent("workflow.completed").WithCorrelationID("c").WithStep(0, 0, "s").WithStepResult("done", 0).Build,
			[]string{"event_data.payload.step_number", "event_data.payload.step_result", "event_data.payload.step_total", "event_data.payload.workflow_id"}},
		{"contextapi", audit.NewContextAPIEvent("query.completed").WithCorrelationID("c").WithResultCount(-1).WithOutcome("ok").Build,
			[]string{"event_outcome", "event_data.payload.query_type", "event_data.payload.result_count"}},
		{"execution", audit.NewExecutionEvent("action.completed").WithCorrelationID("c").WithAction("restart", "").
			WithSafetyCheck("rbac", "maybe").WithActorIP("not-an-ip").Build,
			[]string{"actor_ip", "event_data.payload.safety_checks.0.result"}},
		{"datastorage", audit.NewDataStorageEvent("batch.written").WithCorrelationID("c").WithRetentionDays(0).
			WithTimestamp(time.Now().Add(time.Hour)).Build,
			[]string{"event_timestamp", "retention_days", "event_data.payload.record_count"}},
	} {
		in, err := tc.build()
		require.Nil(t, in, tc.name)
		var ve *audit.ValidationError
		require.True(t, errors.As(err, &ve), "%s: %v", tc.name, err)
		require.Equal(t, tc.fields, ve.Fields(), tc.name)
		for _, f := range tc.fields {
			require.Contains(t, err.Error(), f)
		}
	}
}

func TestBuilders_Options(t *testing.T) {
	t.Parallel()
	id := uuid.Must(uuid.NewV7())
	parent := uuid.Must(uuid.NewV7())
	ts := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	b := audit.NewExecutionEvent("action.failed").
		WithEventID(id).
		WithTimestamp(ts).
		WithOutcome("failure").
		WithStatus("partial").
		WithCorrelationID("rr-7").
		WithActor("user", "alice@example.com").
		WithActorIP("10.0.0.7").
		WithResource("Deployment", "production/checkout").
		WithResourceName("checkout").
		WithParentEventID(parent).
		WithTrace("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7").
		WithClusterID("prod-eu-west-1").
		WithError("E_TIMEOUT", "kubectl timed out").
		WithRetentionDays(365).
		WithSensitive(true).
		WithAction("restart_pod", "")
	first, err := b.Build()
	require.NoError(t, err)
	again, err := b.Build()
	require.NoError(t, err)
	require.Equal(t, first, again, "a fixed id and time make the same event: a retry is a duplicate")

	e, errs := first.Prepare(audit.Defaults{Now: time.Now(), Principal: "writer", RetentionClasses: audit.DefaultRetentionClasses}, audit.DefaultLimits)
	require.Empty(t, errs)
	require.Equal(t, id, e.EventID)
	require.True(t, ts.Equal(e.EventTimestamp))
	require.Equal(t, "failure", e.EventOutcome)
	require.Equal(t, "user", e.ActorType)
	require.Equal(t, "alice@example.com", e.ActorID)
	require.Equal(t, "10.0.0.7", *e.ActorIP)
	require.Equal(t, "production/checkout", *e.ResourceID)
	require.Equal(t, "checkout", *e.ResourceName)
	require.Equal(t, parent, *e.ParentEventID)
	require.Equal(t, "00f067aa0ba902b7", *e.SpanID)
	require.Equal(t, "E_TIMEOUT", *e.ErrorCode)
	require.Equal(t, 365, e.RetentionDays)
	require.True(t, e.IsSensitive)
	d, err := audit.FromJSON(first.EventData)
	require.NoError(t, err)
	require.Equal(t, "partial", d.Status)

	// Without a fixed id each Build makes a new event.
	a, err := builders["gateway"]()
	require.NoError(t, err)
	c, err := builders["gateway"]()
	require.NoError(t, err)
	require.NotEqual(t, *a.EventID, *c.EventID)
}

func TestEventData(t *testing.T) {
	t.Parallel()
	d := audit.NewEventData("billing", "invoice.sent", "success").
		WithPayload(map[string]any{"invoice": "INV-7", "amount_cents": 1200}).
		WithSourcePayload([]string{"raw", "signal"}).
		WithRetry(2, "smtp timeout")
	b, err := d.ToJSON()
	require.NoError(t, err)
	require.JSONEq(t, `{"version":"1.0","service":"billing","operation":"invoice.sent","status":"success","attempt":2,
		"retry_reason":"smtp timeout","payload":{"invoice":"INV-7","amount_cents":1200},"source_payload":["raw","signal"]}`, string(b))
	back, err := audit.FromJSON(b)
	require.NoError(t, err)
	require.Equal(t, 2, back.Attempt)
	require.Equal(t, "billing", back.Service)
	require.JSONEq(t, `{"invoice":"INV-7","amount_cents":1200}`, string(back.Payload))

	for _, tc := range []struct {
		name   string
		d      *audit.EventData
		fields []string
	}{
		{"empty members", audit.NewEventData("", " ", "success"), []string{"event_data.service", "event_data.operation"}},
		{"bad attempt", audit.NewEventData("billing", "x", "ok").WithRetry(0, "").WithRetry(-2, "r"), []string{"event_data.attempt"}},
		{"payload not an object", audit.NewEventData("billing", "x", "ok").WithPayload([]int{1}), []string{"event_data.payload"}},
		{"unencodable", audit.NewEventData("billing", "x", "ok").WithSourcePayload(func() {}), []string{"event_data.source_payload"}},
		{"known service, wrong types", audit.NewEventData("gateway", "signal.received", "success").
			WithPayload(map[string]any{"risk_score": "high", "labels": map[string]any{"app": 7}, "starts_at": "yesterday"}),
			[]string{"event_data.payload.labels.app", "event_data.payload.risk_score", "event_data.payload.starts_at"}},
	} {
		err := tc.d.Validate()
		var ve *audit.ValidationError
		require.True(t, errors.As(err, &ve), "%s: %v", tc.name, err)
		require.Equal(t, tc.fields, ve.Fields(), tc.name)
		_, err = tc.d.ToJSON()
		require.Error(t, err, tc.name)
	}

	// A known service's payload may leave members out and add members of its own (the store
	// only checks the types of members it knows); an unknown service's payload is free.
	require.NoError(t, audit.NewEventData("gateway", "signal.received", "success").WithPayload(map[string]any{"retries": 3}).Validate())
	require.NoError(t, audit.NewEventData("billing", "x", "ok").WithPayload(map[string]any{"risk_score": "high"}).Validate())
	// A later major version of a known service is stored as it is.
	later := audit.NewEventData("gateway", "signal.received", "success").WithPayload(map[string]any{"risk_score": "high"})
	later.Version = "2.0"
	require.NoError(t, later.Validate())

	_, err = audit.FromJSON([]byte(`{"anything":"else"}`))
	require.ErrorContains(t, err, "not an envelope")
	_, err = audit.FromJSON([]byte(`[1]`))
	require.Error(t, err)
}

// TestPrepare_PayloadSchema checks the store's side: a registered service's payload with a
// wrong value is refused naming the member, one with members left out is stored.
func TestPrepare_PayloadSchema(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		data   string
		fields []string
	}{
		{`{"version":"1.0","service":"gateway","operation":"signal.received","status":"success","payload":{"retries":5}}`, nil},
		{`{"version":"1.0","service":"gateway","operation":"signal.received","status":"success"}`, nil},
		{`{"version":"1.0","service":"gateway","operation":"signal.received","status":"success","payload":{"risk_score":-1,"deduplicated":"no"}}`,
			[]string{"event_data.payload.deduplicated", "event_data.payload.risk_score"}},
		{`{"version":"1.0","service":"execution","operation":"action.completed","status":"success","payload":{"safety_checks":[{"check":"rbac"}]}}`,
			[]string{"event_data.payload.safety_checks.0.result"}},
		{`{"version":"1.0","service":"aianalysis","operation":"analysis.completed","status":"success","payload":{"confidence":1e0,"tokens_used":2.0}}`, nil},
		{`{"version":"1.0","service":"mine","operation":"x","status":"success","payload":{"risk_score":"any"}}`, nil},
	} {
		in := audittest.Input(t, &audittest.EventOpts{EventData: json.RawMessage(tc.data)})
		_, errs := in.Prepare(defaults(), audit.DefaultLimits)
		var fields []string
		for _, e := range errs {
			fields = append(fields, e.Field)
		}
		require.Equal(t, tc.fields, fields, tc.data)
	}
	in := audittest.Input(t, &audittest.EventOpts{EventData: json.RawMessage(
		`{"version":"1.0","service":"gateway","operation":"signal.received","status":"success","payload":{"risk_score":101}}`)})
	_, errs := in.Prepare(defaults(), audit.DefaultLimits)
	require.Equal(t, "is 101; it must be at most 100", errs[0].Message)
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestNewEvent checks the builder of any service: its payload type is the caller's, the
// event is checked as the store checks it, and Prepare gives the event as stored with the
// server's defaults in one pass.
func TestNewEvent(t *testing.T) {
	t.Parallel()
	type invoice struct {
		Invoice     string `json:"invoice"`
		AmountCents int    `json:"amount_cents"`
	}
	in, err := audit.NewEvent[invoice]("billing", "invoice.sent").
		WithCorrelationID("order-7").
		WithPayload(invoice{Invoice: "INV-7", AmountCents: 1200}).
		WithRetry(2, "smtp timeout").
		Build()
	require.NoError(t, err)
	require.Equal(t, "billing.invoice.sent", *in.EventType)
	require.Equal(t, "service", *in.ActorType)
	require.Equal(t, "billing", *in.ActorID)
	require.JSONEq(t, `{"version":"1.0","service":"billing","operation":"invoice.sent","status":"success","attempt":2,
		"retry_reason":"smtp timeout","payload":{"invoice":"INV-7","amount_cents":1200}}`, string(in.EventData))

	// No payload set: none is sent (not a null, which the store refuses).
	in, err = audit.NewEvent[map[string]any]("billing", "invoice.sent").WithCorrelationID("order-7").Build()
	require.NoError(t, err)
	require.JSONEq(t, `{"version":"1.0","service":"billing","operation":"invoice.sent","status":"success"}`, string(in.EventData))

	now := time.Now()
	e, err := audit.NewEvent[map[string]any]("auditstore", "deadletter.replayed").
		WithCorrelationID("dl-1").
		WithActor("user", "alice@example.com").
		WithPayload(map[string]any{"deadletter_id": "dl-1"}).
		Prepare(audit.Defaults{Now: now, Principal: "admin", RetentionClasses: []int{30, 2557}}, audit.DefaultLimits)
	require.NoError(t, err)
	require.Equal(t, "auditstore", e.EventCategory)
	require.Equal(t, "replayed", e.EventAction)
	require.Equal(t, "admin", e.SubmittedBy, "submitted_by is the server's principal, not the actor")
	require.Equal(t, "alice@example.com", e.ActorID)
	require.Equal(t, 2557, e.RetentionDays)
	require.Nil(t, e.ResourceType)

	// A kind of resource without an id of one: resource_id is left out, not sent empty.
	e, err = audit.NewEvent[map[string]any]("auditstore", "query.executed").WithCorrelationID("q-1").
		WithResource("auditevents", "").Prepare(audit.Defaults{Now: now, Principal: "query"}, audit.DefaultLimits)
	require.NoError(t, err)
	require.Equal(t, "auditevents", *e.ResourceType)
	require.Nil(t, e.ResourceID)
	require.WithinDuration(t, now, e.EventTimestamp, time.Millisecond, "the time is the defaults' Now")

	_, err = audit.NewEvent[map[string]any]("auditstore", "deadletter.replayed").Prepare(audit.Defaults{Now: now}, audit.DefaultLimits)
	var ve *audit.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, []string{"correlation_id"}, ve.Fields())
}
