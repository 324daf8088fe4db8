package audit

import (
	"strings"
	"time"

	"github.com/google/uuid"
)

// EventBuilder is the one builder of events: the event's own fields, the event_data envelope,
// and the service's payload of type P. It is embedded in each service's builder (GatewayEvent,
// ...), which adds With methods for its payload's members, and in Builder, which builds an
// event of any other service; every method returns that builder B, so calls chain:
//
//	in, err := audit.NewGatewayEvent("signal.received").
//		WithCorrelationID("rr-2026-001").
//		WithSignalType("prometheus").
//		WithFingerprint("a1b2c3").
//		Build()
//
// A builder is not safe for concurrent use. Build may be called more than once; each call
// makes a new event (with a new event_id unless WithEventID set one).
type EventBuilder[B, P any] struct {
	self      B
	service   string
	operation string
	in        Input
	eventID   *uuid.UUID
	timestamp time.Time
	outcome   string
	status    string
	data      EventData
	payload   P
}

func (b *EventBuilder[B, P]) init(self B, service, operation string) {
	b.self, b.service, b.operation = self, service, operation
}

// starter is a service's builder: it embeds an EventBuilder whose B is itself.
type starter[B any] interface {
	init(self B, service, operation string)
}

// start makes b the builder of an event of service and operation.
func start[B starter[B]](b B, service, operation string) B {
	b.init(b, service, operation)
	return b
}

// set stores v in *field and returns b: the body of every With method that sets one field.
func set[B, T any](b B, field *T, v T) B {
	*field = v
	return b
}

// setPtr is set for an optional field, a pointer so that a zero value is still sent.
func setPtr[B, T any](b B, field **T, v T) B {
	*field = &v
	return b
}

// WithEventID sets the event's id (by default a new UUIDv7 per Build). A retry of the same
// event must carry the same id so that the store counts it once.
func (b *EventBuilder[B, P]) WithEventID(id uuid.UUID) B { return setPtr(b.self, &b.eventID, id) }

// WithTimestamp sets when the event happened (default: when Build is called).
func (b *EventBuilder[B, P]) WithTimestamp(t time.Time) B { return set(b.self, &b.timestamp, t) }

// WithOutcome sets event_outcome: success (the default), failure, pending or unknown. The
// envelope's status follows it unless WithStatus sets another.
func (b *EventBuilder[B, P]) WithOutcome(outcome string) B { return set(b.self, &b.outcome, outcome) }

// WithStatus sets the envelope's status, in the service's own terms (partial, ...), when it
// differs from the outcome.
func (b *EventBuilder[B, P]) WithStatus(status string) B { return set(b.self, &b.status, status) }

// WithCorrelationID ties the event to the others of one request or remediation (required).
func (b *EventBuilder[B, P]) WithCorrelationID(id string) B {
	return setPtr(b.self, &b.in.CorrelationID, id)
}

// WithActor sets who acted (default: actor_type service, actor_id the service's name).
func (b *EventBuilder[B, P]) WithActor(actorType, actorID string) B {
	b.in.ActorType, b.in.ActorID = &actorType, &actorID
	return b.self
}

// WithActorIP sets the IPv4 or IPv6 address the actor acted from.
func (b *EventBuilder[B, P]) WithActorIP(ip string) B { return setPtr(b.self, &b.in.ActorIP, ip) }

// WithResource sets the resource acted on; an empty id leaves resource_id out, for an event
// about a kind of resource rather than one of them.
func (b *EventBuilder[B, P]) WithResource(resourceType, resourceID string) B {
	b.in.ResourceType, b.in.ResourceID = &resourceType, nil
	if resourceID != "" {
		b.in.ResourceID = &resourceID
	}
	return b.self
}

// WithResourceName sets the human-readable name of the resource acted on.
func (b *EventBuilder[B, P]) WithResourceName(name string) B {
	return setPtr(b.self, &b.in.ResourceName, name)
}

// WithParentEventID links the event to the event that caused it.
func (b *EventBuilder[B, P]) WithParentEventID(id uuid.UUID) B {
	return setPtr(b.self, &b.in.ParentEventID, id.String())
}

// WithTrace sets the W3C trace and span the event happened in.
func (b *EventBuilder[B, P]) WithTrace(traceID, spanID string) B {
	b.in.TraceID, b.in.SpanID = &traceID, &spanID
	return b.self
}

// WithNamespace sets the Kubernetes namespace the event is about.
func (b *EventBuilder[B, P]) WithNamespace(namespace string) B {
	return setPtr(b.self, &b.in.Namespace, namespace)
}

// WithClusterID sets the cluster the event is about.
func (b *EventBuilder[B, P]) WithClusterID(id string) B { return setPtr(b.self, &b.in.ClusterID, id) }

// WithSeverity sets severity: debug, info, low, medium, warning, high, error or critical.
func (b *EventBuilder[B, P]) WithSeverity(severity string) B {
	return setPtr(b.self, &b.in.Severity, severity)
}

// WithDuration sets how long the operation took (duration_ms).
func (b *EventBuilder[B, P]) WithDuration(d time.Duration) B {
	return setPtr(b.self, &b.in.DurationMS, d.Milliseconds())
}

// WithError sets the error the operation ended with; either may be empty.
func (b *EventBuilder[B, P]) WithError(code, message string) B {
	if code != "" {
		b.in.ErrorCode = &code
	}
	if message != "" {
		b.in.ErrorMessage = &message
	}
	return b.self
}

// WithRetentionDays asks for the event to be kept at least this many days (1..2557; below the
// shortest retention class means that class).
func (b *EventBuilder[B, P]) WithRetentionDays(days int) B {
	return setPtr(b.self, &b.in.RetentionDays, int64(days))
}

// WithSensitive marks the event as holding sensitive data.
func (b *EventBuilder[B, P]) WithSensitive(sensitive bool) B {
	return setPtr(b.self, &b.in.IsSensitive, sensitive)
}

// WithRetry records that the event comes from retry attempt number attempt (1 is the first
// try), and why the operation was retried.
func (b *EventBuilder[B, P]) WithRetry(attempt int, reason string) B {
	b.data.WithRetry(attempt, reason)
	return b.self
}

// WithSourcePayload keeps the original signal the event is about, as any JSON value.
func (b *EventBuilder[B, P]) WithSourcePayload(v any) B {
	b.data.WithSourcePayload(v)
	return b.self
}

// WithPayload sets the service's payload whole (each service's builder also sets its members
// one by one).
func (b *EventBuilder[B, P]) WithPayload(p P) B { return set(b.self, &b.payload, p) }

// Build returns the event as a client sends it, after checking it as the store will, and more
// strictly: the payload must be complete for its service. The error is a *ValidationError
// naming every problem at once.
func (b *EventBuilder[B, P]) Build() (*Input, error) {
	in, _, err := b.build(Defaults{Now: time.Now()}, DefaultLimits)
	return in, err
}

// Prepare returns the event as the store keeps it, with d's defaults (submitted_by, retention
// classes) and checked against lim: what a server writing its own events stores, checked
// once, as Build and Input.Prepare would together.
func (b *EventBuilder[B, P]) Prepare(d Defaults, lim Limits) (Event, error) {
	_, e, err := b.build(d, lim)
	return e, err
}

// build makes the event around the payload and checks it strictly (see Build) with d and lim;
// d.Principal, when empty, is the actor.
func (b *EventBuilder[B, P]) build(d Defaults, lim Limits) (*Input, Event, error) {
	now := d.Now
	in := b.in // a copy: the builder stays reusable
	s := func(v string) *string { return &v }

	id := b.eventID
	if id == nil {
		v7, err := uuid.NewV7()
		if err != nil {
			return nil, Event{}, err
		}
		id = &v7
	}
	in.EventID = s(id.String())
	ts := b.timestamp
	if ts.IsZero() {
		ts = now
	}
	in.EventTimestamp = s(ts.UTC().Format(time.RFC3339Nano))
	in.EventType = s(eventType(b.service, b.operation))
	outcome := b.outcome
	if outcome == "" {
		outcome = "success"
	}
	in.EventOutcome = &outcome
	if in.ActorType == nil {
		in.ActorType, in.ActorID = s("service"), s(b.service)
	}

	data := b.data // a copy, as above
	data.Version, data.Service, data.Operation = EnvelopeVersion, b.service, b.operation
	data.Status = b.status
	if data.Status == "" {
		data.Status = outcome
	}
	data.WithPayload(b.payload)
	if string(data.Payload) == "null" {
		data.Payload = nil // a Builder whose payload was never set (a nil map or interface)
	}
	raw, err := data.marshal()
	if err != nil {
		return nil, Event{}, err
	}
	in.EventData = raw

	if d.Principal == "" {
		d.Principal = *in.ActorID
	}
	e, errs := in.prepare(d, lim, true)
	if len(errs) > 0 {
		return nil, Event{}, &ValidationError{Errors: errs}
	}
	return &in, e, nil
}

// eventType is <service>.<operation>, but an operation that already starts with the service's
// name (workflow.completed) is not prefixed twice.
func eventType(service, operation string) string {
	if strings.HasPrefix(operation, service+".") {
		return operation
	}
	return service + "." + operation
}

// Builder builds an event of any service, its payload of type P a value that encodes as a
// JSON object (a struct of the service's own, or a map): NewEvent[billingPayload]("billing",
// "invoice.sent") makes event type billing.invoice.sent. The registered services have builders
// of their own (GatewayEvent, ...), which add a With method for each member of their payload.
type Builder[P any] struct {
	EventBuilder[*Builder[P], P]
}

// NewEvent starts an event of the given service and operation.
func NewEvent[P any](service, operation string) *Builder[P] {
	return start(&Builder[P]{}, service, operation)
}

// Service names: the envelope's service and the first segment (event_category) of the event
// types of each builder.
const (
	ServiceGateway     = "gateway"
	ServiceAIAnalysis  = "aianalysis"
	ServiceWorkflow    = "workflow"
	ServiceContextAPI  = "contextapi"
	ServiceExecution   = "execution"
	ServiceDataStorage = "datastorage"
)

// GatewayPayload is event_data.payload of the gateway (schemas/gateway.md).
type GatewayPayload struct {
	SignalType         string            `json:"signal_type,omitempty"`
	Fingerprint        string            `json:"fingerprint,omitempty"`
	AlertName          string            `json:"alert_name,omitempty"`
	Severity           string            `json:"severity,omitempty"`
	Namespace          string            `json:"namespace,omitempty"`
	Cluster            string            `json:"cluster,omitempty"`
	Labels             map[string]string `json:"labels,omitempty"`
	Annotations        map[string]string `json:"annotations,omitempty"`
	StartsAt           *time.Time        `json:"starts_at,omitempty"`
	Deduplicated       *bool             `json:"deduplicated,omitempty"`
	DuplicateCount     *int              `json:"duplicate_count,omitempty"`
	StormDetected      *bool             `json:"storm_detected,omitempty"`
	RiskScore          *int              `json:"risk_score,omitempty"`
	RemediationRequest string            `json:"remediation_request,omitempty"`
}

// GatewayEvent builds a gateway event: NewGatewayEvent("signal.received") makes event type
// gateway.signal.received.
type GatewayEvent struct {
	EventBuilder[*GatewayEvent, GatewayPayload]
}

// NewGatewayEvent starts a gateway event of the given operation.
func NewGatewayEvent(operation string) *GatewayEvent {
	return start(&GatewayEvent{}, ServiceGateway, operation)
}

// WithSignalType sets the signal's source: prometheus, kubernetes-event, ... (required).
func (b *GatewayEvent) WithSignalType(t string) *GatewayEvent {
	return set(b, &b.payload.SignalType, t)
}

// WithFingerprint sets the signal's fingerprint (required).
func (b *GatewayEvent) WithFingerprint(fp string) *GatewayEvent {
	return set(b, &b.payload.Fingerprint, fp)
}

// WithAlertName sets the alert's name and the severity its source gave it.
func (b *GatewayEvent) WithAlertName(name, severity string) *GatewayEvent {
	b.payload.AlertName, b.payload.Severity = name, severity
	return b
}

// WithSignalTarget sets the namespace and cluster the signal is about.
func (b *GatewayEvent) WithSignalTarget(namespace, cluster string) *GatewayEvent {
	b.payload.Namespace, b.payload.Cluster = namespace, cluster
	return b
}

// WithLabels sets the signal's labels and annotations.
func (b *GatewayEvent) WithLabels(labels, annotations map[string]string) *GatewayEvent {
	b.payload.Labels, b.payload.Annotations = labels, annotations
	return b
}

// WithStartsAt sets when the source saw the condition begin.
func (b *GatewayEvent) WithStartsAt(t time.Time) *GatewayEvent {
	return setPtr(b, &b.payload.StartsAt, t.UTC())
}

// WithDeduplication records whether the signal was folded into one already being handled,
// and how many repetitions were folded so far.
func (b *GatewayEvent) WithDeduplication(deduplicated bool, count int) *GatewayEvent {
	b.payload.Deduplicated, b.payload.DuplicateCount = &deduplicated, &count
	return b
}

// WithStormDetected records whether the signal is part of a storm.
func (b *GatewayEvent) WithStormDetected(storm bool) *GatewayEvent {
	return setPtr(b, &b.payload.StormDetected, storm)
}

// WithRiskScore sets the gateway's risk score, 0 to 100.
func (b *GatewayEvent) WithRiskScore(score int) *GatewayEvent {
	return setPtr(b, &b.payload.RiskScore, score)
}

// WithRemediationRequest sets the remediation request the signal created or joined.
func (b *GatewayEvent) WithRemediationRequest(name string) *GatewayEvent {
	return set(b, &b.payload.RemediationRequest, name)
}

// AIAnalysisPayload is event_data.payload of AI analysis (schemas/aianalysis.md).
type AIAnalysisPayload struct {
	Provider           string   `json:"provider,omitempty"`
	Model              string   `json:"model,omitempty"`
	AnalysisType       string   `json:"analysis_type,omitempty"`
	InputTokens        *int     `json:"input_tokens,omitempty"`
	OutputTokens       *int     `json:"output_tokens,omitempty"`
	TokensUsed         *int     `json:"tokens_used,omitempty"`
	EstimatedCostUSD   *float64 `json:"estimated_cost_usd,omitempty"`
	Confidence         *float64 `json:"confidence,omitempty"`
	RiskScore          *int     `json:"risk_score,omitempty"`
	RootCause          string   `json:"root_cause,omitempty"`
	RecommendedActions []string `json:"recommended_actions,omitempty"`
	LLMDurationMS      *int64   `json:"llm_duration_ms,omitempty"`
}

// AIAnalysisEvent builds an AI analysis event: NewAIAnalysisEvent("analysis.completed")
// makes event type aianalysis.analysis.completed.
type AIAnalysisEvent struct {
	EventBuilder[*AIAnalysisEvent, AIAnalysisPayload]
}

// NewAIAnalysisEvent starts an AI analysis event of the given operation.
func NewAIAnalysisEvent(operation string) *AIAnalysisEvent {
	return start(&AIAnalysisEvent{}, ServiceAIAnalysis, operation)
}

// WithLLM sets the model's provider and name (required).
func (b *AIAnalysisEvent) WithLLM(provider, model string) *AIAnalysisEvent {
	b.payload.Provider, b.payload.Model = provider, model
	return b
}

// WithAnalysisType sets what was analysed, e.g. root_cause_analysis.
func (b *AIAnalysisEvent) WithAnalysisType(t string) *AIAnalysisEvent {
	return set(b, &b.payload.AnalysisType, t)
}

// WithTokens sets the tokens sent to and produced by the model; tokens_used is their sum.
func (b *AIAnalysisEvent) WithTokens(input, output int) *AIAnalysisEvent {
	total := input + output
	b.payload.InputTokens, b.payload.OutputTokens, b.payload.TokensUsed = &input, &output, &total
	return b
}

// WithCost sets the estimated cost of the model calls in US dollars.
func (b *AIAnalysisEvent) WithCost(usd float64) *AIAnalysisEvent {
	return setPtr(b, &b.payload.EstimatedCostUSD, usd)
}

// WithConfidence sets the model's confidence in its result, 0 to 1.
func (b *AIAnalysisEvent) WithConfidence(c float64) *AIAnalysisEvent {
	return setPtr(b, &b.payload.Confidence, c)
}

// WithRiskScore sets the assessed risk of the recommended remediation, 0 to 100.
func (b *AIAnalysisEvent) WithRiskScore(score int) *AIAnalysisEvent {
	return setPtr(b, &b.payload.RiskScore, score)
}

// WithRootCause sets the root cause found and the actions recommended.
func (b *AIAnalysisEvent) WithRootCause(cause string, actions ...string) *AIAnalysisEvent {
	b.payload.RootCause, b.payload.RecommendedActions = cause, actions
	return b
}

// WithLLMDuration sets the time spent waiting for the model.
func (b *AIAnalysisEvent) WithLLMDuration(d time.Duration) *AIAnalysisEvent {
	return setPtr(b, &b.payload.LLMDurationMS, d.Milliseconds())
}

// WorkflowPayload is event_data.payload of the workflow service (schemas/workflow.md).
type WorkflowPayload struct {
	WorkflowID      string            `json:"workflow_id,omitempty"`
	WorkflowVersion string            `json:"workflow_version,omitempty"`
	WorkflowType    string            `json:"workflow_type,omitempty"`
	ExecutionID     string            `json:"execution_id,omitempty"`
	Phase           string            `json:"phase,omitempty"`
	StepNumber      *int              `json:"step_number,omitempty"`
	StepTotal       *int              `json:"step_total,omitempty"`
	StepName        string            `json:"step_name,omitempty"`
	StepResult      string            `json:"step_result,omitempty"`
	StepsCompleted  *int              `json:"steps_completed,omitempty"`
	Parameters      map[string]string `json:"parameters,omitempty"`
}

// WorkflowEvent builds a workflow event: NewWorkflowEvent("workflow.completed") makes event
// type workflow.completed, NewWorkflowEvent("step.completed") workflow.step.completed.
type WorkflowEvent struct {
	EventBuilder[*WorkflowEvent, WorkflowPayload]
}

// NewWorkflowEvent starts a workflow event of the given operation.
func NewWorkflowEvent(operation string) *WorkflowEvent {
	return start(&WorkflowEvent{}, ServiceWorkflow, operation)
}

// WithWorkflowID sets the workflow's identifier (required).
func (b *WorkflowEvent) WithWorkflowID(id string) *WorkflowEvent {
	return set(b, &b.payload.WorkflowID, id)
}

// WithWorkflowVersion sets the version of the workflow definition.
func (b *WorkflowEvent) WithWorkflowVersion(v string) *WorkflowEvent {
	return set(b, &b.payload.WorkflowVersion, v)
}

// WithWorkflowType sets the kind of workflow, e.g. remediation.
func (b *WorkflowEvent) WithWorkflowType(t string) *WorkflowEvent {
	return set(b, &b.payload.WorkflowType, t)
}

// WithExecutionID sets the execution of the workflow the event belongs to.
func (b *WorkflowEvent) WithExecutionID(id string) *WorkflowEvent {
	return set(b, &b.payload.ExecutionID, id)
}

// WithPhase sets the workflow's phase.
func (b *WorkflowEvent) WithPhase(phase string) *WorkflowEvent {
	return set(b, &b.payload.Phase, phase)
}

// WithStep sets the step the event is about: its number (from 1), the number of steps, and
// its name.
func (b *WorkflowEvent) WithStep(number, total int, name string) *WorkflowEvent {
	b.payload.StepNumber, b.payload.StepTotal, b.payload.StepName = &number, &total, name
	return b
}

// WithStepResult sets how the step ended (success, failure, skipped) and how many steps have
// completed so far.
func (b *WorkflowEvent) WithStepResult(result string, completed int) *WorkflowEvent {
	b.payload.StepResult, b.payload.StepsCompleted = result, &completed
	return b
}

// WithParameters sets the parameters the workflow was started with.
func (b *WorkflowEvent) WithParameters(p map[string]string) *WorkflowEvent {
	return set(b, &b.payload.Parameters, p)
}

// ContextAPIPayload is event_data.payload of the Context API (schemas/contextapi.md).
type ContextAPIPayload struct {
	QueryType   string         `json:"query_type,omitempty"`
	QueryParams map[string]any `json:"query_params,omitempty"`
	ResultCount *int           `json:"result_count,omitempty"`
	CacheHit    *bool          `json:"cache_hit,omitempty"`
	CacheKey    string         `json:"cache_key,omitempty"`
	DataSource  string         `json:"data_source,omitempty"`
}

// ContextAPIEvent builds a Context API event: NewContextAPIEvent("query.completed") makes
// event type contextapi.query.completed.
type ContextAPIEvent struct {
	EventBuilder[*ContextAPIEvent, ContextAPIPayload]
}

// NewContextAPIEvent starts a Context API event of the given operation.
func NewContextAPIEvent(operation string) *ContextAPIEvent {
	return start(&ContextAPIEvent{}, ServiceContextAPI, operation)
}

// WithQuery sets the kind of query (required) and its parameters.
func (b *ContextAPIEvent) WithQuery(queryType string, params map[string]any) *ContextAPIEvent {
	b.payload.QueryType, b.payload.QueryParams = queryType, params
	return b
}

// WithResultCount sets how many results the query returned.
func (b *ContextAPIEvent) WithResultCount(n int) *ContextAPIEvent {
	return setPtr(b, &b.payload.ResultCount, n)
}

// WithCache records whether the answer came from the cache, and its key.
func (b *ContextAPIEvent) WithCache(hit bool, key string) *ContextAPIEvent {
	b.payload.CacheHit, b.payload.CacheKey = &hit, key
	return b
}

// WithDataSource sets where the answer came from.
func (b *ContextAPIEvent) WithDataSource(source string) *ContextAPIEvent {
	return set(b, &b.payload.DataSource, source)
}

// SafetyCheck is one check made before an action: passed, failed or skipped.
type SafetyCheck struct {
	Check  string `json:"check"`
	Result string `json:"result"`
}

// ExecutionPayload is event_data.payload of execution (schemas/execution.md).
type ExecutionPayload struct {
	ActionType         string        `json:"action_type,omitempty"`
	ActionCommand      string        `json:"action_command,omitempty"`
	DryRun             *bool         `json:"dry_run,omitempty"`
	ExecutionID        string        `json:"execution_id,omitempty"`
	WorkflowID         string        `json:"workflow_id,omitempty"`
	TargetResourceType string        `json:"target_resource_type,omitempty"`
	TargetResourceName string        `json:"target_resource_name,omitempty"`
	TargetNamespace    string        `json:"target_namespace,omitempty"`
	TargetCluster      string        `json:"target_cluster,omitempty"`
	ExitCode           *int          `json:"exit_code,omitempty"`
	SafetyChecksPassed *bool         `json:"safety_checks_passed,omitempty"`
	SafetyChecks       []SafetyCheck `json:"safety_checks,omitempty"`
}

// ExecutionEvent builds an execution event: NewExecutionEvent("action.completed") makes
// event type execution.action.completed.
type ExecutionEvent struct {
	EventBuilder[*ExecutionEvent, ExecutionPayload]
}

// NewExecutionEvent starts an execution event of the given operation.
func NewExecutionEvent(operation string) *ExecutionEvent {
	return start(&ExecutionEvent{}, ServiceExecution, operation)
}

// WithAction sets the kind of action (required) and the command that carried it out.
func (b *ExecutionEvent) WithAction(actionType, command string) *ExecutionEvent {
	b.payload.ActionType, b.payload.ActionCommand = actionType, command
	return b
}

// WithDryRun records whether the action was only simulated.
func (b *ExecutionEvent) WithDryRun(dryRun bool) *ExecutionEvent {
	return setPtr(b, &b.payload.DryRun, dryRun)
}

// WithExecutionID sets the execution and the workflow the action belongs to.
func (b *ExecutionEvent) WithExecutionID(executionID, workflowID string) *ExecutionEvent {
	b.payload.ExecutionID, b.payload.WorkflowID = executionID, workflowID
	return b
}

// WithTarget sets the resource acted on: its kind, name and namespace.
func (b *ExecutionEvent) WithTarget(resourceType, name, namespace string) *ExecutionEvent {
	b.payload.TargetResourceType, b.payload.TargetResourceName, b.payload.TargetNamespace = resourceType, name, namespace
	return b
}

// WithTargetCluster sets the cluster of the resource acted on.
func (b *ExecutionEvent) WithTargetCluster(cluster string) *ExecutionEvent {
	return set(b, &b.payload.TargetCluster, cluster)
}

// WithExitCode sets the exit code of the command.
func (b *ExecutionEvent) WithExitCode(code int) *ExecutionEvent {
	return setPtr(b, &b.payload.ExitCode, code)
}

// WithSafetyCheck adds a safety check made before acting (passed, failed or skipped);
// safety_checks_passed says whether none has failed.
func (b *ExecutionEvent) WithSafetyCheck(check, result string) *ExecutionEvent {
	b.payload.SafetyChecks = append(b.payload.SafetyChecks, SafetyCheck{Check: check, Result: result})
	passed := true
	for _, c := range b.payload.SafetyChecks {
		passed = passed && c.Result != "failed"
	}
	b.payload.SafetyChecksPassed = &passed
	return b
}

// DataStoragePayload is event_data.payload of data storage (schemas/datastorage.md).
type DataStoragePayload struct {
	RecordCount *int   `json:"record_count,omitempty"`
	Bytes       *int64 `json:"bytes,omitempty"`
	Table       string `json:"table,omitempty"`
	Partition   string `json:"partition,omitempty"`
	BatchID     string `json:"batch_id,omitempty"`
	Query       string `json:"query,omitempty"`
}

// DataStorageEvent builds a data storage event: NewDataStorageEvent("batch.written") makes
// event type datastorage.batch.written.
type DataStorageEvent struct {
	EventBuilder[*DataStorageEvent, DataStoragePayload]
}

// NewDataStorageEvent starts a data storage event of the given operation.
func NewDataStorageEvent(operation string) *DataStorageEvent {
	return start(&DataStorageEvent{}, ServiceDataStorage, operation)
}

// WithRecords sets how many records and bytes the operation wrote, read or removed (records
// required).
func (b *DataStorageEvent) WithRecords(count int, bytes int64) *DataStorageEvent {
	b.payload.RecordCount, b.payload.Bytes = &count, &bytes
	return b
}

// WithTable sets the table and partition the operation worked on.
func (b *DataStorageEvent) WithTable(table, partition string) *DataStorageEvent {
	b.payload.Table, b.payload.Partition = table, partition
	return b
}

// WithBatchID sets the batch the operation belongs to.
func (b *DataStorageEvent) WithBatchID(id string) *DataStorageEvent {
	return set(b, &b.payload.BatchID, id)
}

// WithQuery sets the query it ran, without values.
func (b *DataStorageEvent) WithQuery(q string) *DataStorageEvent { return set(b, &b.payload.Query, q) }
