package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/auditstore/auditstore/shared/audit"
	"github.com/google/uuid"
)

// service is one kubernaut service: the actor of its events and the first segment of their
// types.
type service struct {
	name         string
	resourceType string
	// types are "<object>.<action>"; the first ones are the most frequent (see pickType).
	types []string
}

// services in the order a remediation passes through them; a correlation's events follow it.
// datastorage is not a stage: it writes now and then during any of them. 100 event types.
var services = []service{
	{"gateway", "Signal", []string{"signal.received", "signal.validated", "signal.deduplicated", "crd.created",
		"signal.forwarded", "crd.updated", "storm.detected", "storm.aggregated", "signal.rejected",
		"webhook.received", "auth.failed", "ratelimit.exceeded", "adapter.registered"}},
	{"signalprocessing", "SignalProcessing", []string{"enrichment.started", "enrichment.completed",
		"classification.completed", "priority.assigned", "environment.detected"}},
	{"remediation", "RemediationRequest", []string{"request.created", "phase.transitioned", "request.updated",
		"request.completed", "lock.acquired", "lock.released", "approval.requested", "approval.granted",
		"request.failed", "approval.rejected", "request.timeout", "routing.blocked"}},
	{"contextapi", "ContextQuery", []string{"query.received", "query.completed", "cache.hit", "cache.miss",
		"context.assembled", "history.fetched", "similarity.searched", "embedding.computed", "query.failed"}},
	{"aianalysis", "AIAnalysis", []string{"analysis.started", "provider.called", "investigation.started",
		"investigation.completed", "rca.generated", "recommendation.generated", "analysis.completed",
		"policy.evaluated", "prompt.rendered", "holmesgpt.called", "approval.required", "provider.failed",
		"analysis.failed"}},
	{"workflow", "WorkflowSelection", []string{"selection.started", "catalog.searched", "workflow.selected",
		"parameters.resolved", "selection.completed", "workflow.validated", "version.pinned",
		"playbook.loaded", "execution.requested", "dryrun.completed", "workflow.rejected"}},
	{"execution", "WorkflowExecution", []string{"job.created", "job.started", "step.started", "step.completed",
		"action.applied", "job.completed", "verification.passed", "pipelinerun.created", "step.failed",
		"verification.failed", "job.failed", "rollback.started", "rollback.completed"}},
	{"effectiveness", "EffectivenessAssessment", []string{"assessment.started", "metric.evaluated",
		"score.computed", "assessment.completed", "signal.resolved", "signal.recurred"}},
	{"notification", "NotificationRequest", []string{"message.queued", "slack.sent", "email.sent",
		"pagerduty.sent", "template.rendered", "message.retried", "escalation.triggered", "digest.sent",
		"message.failed"}},
	{"datastorage", "AuditBatch", []string{"batch.written", "query.slow", "partition.created",
		"retention.applied", "export.started", "export.completed", "hold.placed", "hold.released",
		"batch.failed"}},
}

// datastorage is the index of the service that writes during every stage.
const datastorage = 9

// retentionOf is each category's retention class, as a retention policy would set it: most
// events are kept 7 years, notifications 90 days, datastorage's own 1 year.
func retentionOf(svc string) int {
	switch svc {
	case "notification":
		return 90
	case "datastorage":
		return 365
	}
	return 2557
}

var (
	namespaces = []string{"production", "payments", "checkout", "search", "identity", "billing",
		"inventory", "shipping", "catalog", "frontend", "staging", "analytics", "ml-serving",
		"data-pipeline", "monitoring", "logging", "ingress", "kube-system", "cert-manager", "vault",
		"kafka", "redis", "postgres", "batch"}
	clusters   = []string{"prod-eu-west-1", "prod-us-east-1", "prod-ap-south-1", "staging-eu-west-1"}
	alertNames = []string{"KubePodCrashLooping", "KubePodNotReady", "KubeDeploymentReplicasMismatch",
		"KubeContainerOOMKilled", "NodeDiskPressure", "NodeMemoryPressure", "KubeHpaMaxedOut",
		"KubeJobFailed", "KubePersistentVolumeFillingUp", "CPUThrottlingHigh", "TargetDown",
		"HighErrorRate", "HighLatencyP99", "CertificateExpiringSoon", "KubeStatefulSetReplicasMismatch",
		"NodeNotReady", "KubeQuotaExceeded", "EtcdHighFsyncDuration", "IngressHigh5xx",
		"KafkaConsumerLag", "RedisMemoryHigh", "PostgresReplicationLag", "KubeAPIErrorsHigh",
		"ImagePullBackOff", "ContainerRestartingOften", "DNSResolutionFailures", "PodEvicted",
		"VolumeAttachFailed", "ConfigMapChanged", "SecretRotationFailed"}
	apps      = []string{"checkout", "cart", "payments", "search", "auth", "api", "web", "worker", "scheduler", "indexer", "recommender", "notifier"}
	teams     = []string{"payments", "platform", "search", "identity", "growth", "data", "sre"}
	providers = []string{"anthropic", "openai", "vertexai", "bedrock", "ollama"}
	models    = map[string][]string{
		"anthropic": {"claude-sonnet-4", "claude-haiku-4"},
		"openai":    {"gpt-4.1", "gpt-4o-mini"},
		"vertexai":  {"gemini-2.5-pro", "gemini-2.5-flash"},
		"bedrock":   {"claude-sonnet-4", "llama-3.3-70b"},
		"ollama":    {"llama3.1:8b", "qwen2.5:14b"},
	}
	actions = []string{"restart-pod", "scale-deployment", "increase-memory-limit", "rollback-deployment",
		"cordon-node", "drain-node", "expand-pvc", "rotate-certificate", "clear-cache", "restart-statefulset"}
	errorCodes = []string{"TIMEOUT", "PROVIDER_UNAVAILABLE", "VALIDATION_FAILED", "PERMISSION_DENIED",
		"CONFLICT", "RATE_LIMITED", "NOT_FOUND", "INTERNAL"}
	words = strings.Fields(`the pod container restarted after memory pressure on node while the
		deployment rollout waited for readiness probes and the controller reconciled replicas
		against desired state with backoff jitter and leader election across zones`)
)

// workflows is the catalog a remediation picks its workflow from: 200 ids, a few of them used
// far more than the rest.
var workflows = func() []string {
	w := make([]string, 200)
	for i := range w {
		w[i] = fmt.Sprintf("wf-%s-v%d", actions[i%len(actions)], i/len(actions)+1)
	}
	return w
}()

// generator makes the events of one chunk. Every chunk has its own generator seeded from the
// run's seed and the chunk's number, so chunks are made in any order, on any worker, and the
// same seed makes the same events.
type generator struct {
	rng       *rand.Rand
	buf       []byte
	principal map[string]string
}

func newGenerator(seed uint64, chunk int) *generator {
	g := &generator{rng: rand.New(rand.NewPCG(seed, uint64(chunk)*0x9e3779b97f4a7c15+1)), principal: map[string]string{}}
	for _, s := range services {
		g.principal[s.name] = "system:serviceaccount:kubernaut-system:" + s.name
	}
	return g
}

// chunk returns n events whose correlations start in [from, to): correlations of 10–30
// events (only when n is not a sum of such sizes is the last one shorter), each event a few
// seconds after the one before, so a correlation spans minutes.
func (g *generator) chunk(n int, from, to time.Time, receivedLag time.Duration) []audit.Event {
	var sizes []int
	for left := n; left > 0; {
		s := 10 + g.rng.IntN(21)
		switch {
		case left <= 30:
			s = left
		case left-s < 10:
			s = left - 10
		}
		sizes = append(sizes, s)
		left -= s
	}
	events := make([]audit.Event, 0, n)
	span := to.Sub(from)
	for i, s := range sizes {
		// Starts spread evenly over the window with jitter, so events come in time order,
		// as they would arrive, and the heap is ordered by time like a real one.
		start := from.Add(time.Duration((float64(i) + g.rng.Float64()) / float64(len(sizes)) * float64(span)))
		events = g.correlation(events, s, start, receivedLag)
	}
	return events
}

// correlation is what one remediation leaves behind: its stages in order, a few events each.
type correlation struct {
	id, traceID, namespace, cluster, app, team, pod, alert string
	fingerprint, workflowID, executionID, provider, model  string
	riskScore                                              int
	failed                                                 bool
}

func (g *generator) correlation(events []audit.Event, size int, start time.Time, receivedLag time.Duration) []audit.Event {
	r := g.rng
	c := correlation{
		id:          fmt.Sprintf("rr-%012x", r.Uint64()>>16),
		traceID:     g.hex(16),
		namespace:   namespaces[zipf(r, len(namespaces))],
		cluster:     clusters[zipf(r, len(clusters))],
		app:         apps[r.IntN(len(apps))],
		team:        teams[r.IntN(len(teams))],
		alert:       alertNames[zipf(r, len(alertNames))],
		fingerprint: g.hex(16),
		workflowID:  workflows[zipf(r, len(workflows))],
		executionID: "we-" + g.hex(8),
		provider:    providers[zipf(r, len(providers))],
		riskScore:   r.IntN(101),
		failed:      r.IntN(12) == 0,
	}
	c.pod = fmt.Sprintf("%s-%s-%s", c.app, g.hex(5)[:9], g.hex(3)[:5])
	c.model = models[c.provider][r.IntN(2)]
	stages := len(services) - 1 // every service but datastorage
	ts := start
	var parent *uuid.UUID
	for i := range size {
		si := i * stages / size
		if r.IntN(20) == 0 {
			si = datastorage
		}
		e := g.event(&c, &services[si], ts, parent, i == size-1)
		e.ReceivedAt = ts.Add(receivedLag + time.Duration(r.IntN(400))*time.Millisecond).Truncate(time.Microsecond)
		events = append(events, e)
		parent = &events[len(events)-1].EventID
		ts = ts.Add(time.Duration(500+r.IntN(20_000)) * time.Millisecond)
	}
	return events
}

// payload is event_data.payload; Filler pads event_data to about 800 bytes.
type payload struct {
	AlertName      string            `json:"alert_name"`
	Fingerprint    string            `json:"fingerprint"`
	Namespace      string            `json:"namespace"`
	Cluster        string            `json:"cluster"`
	Labels         map[string]string `json:"labels"`
	RiskScore      int               `json:"risk_score"`
	Retries        int               `json:"retries"`
	Provider       string            `json:"provider"`
	Model          string            `json:"model"`
	WorkflowID     string            `json:"workflow_id"`
	ExecutionID    string            `json:"execution_id"`
	Action         string            `json:"action"`
	Confidence     float64           `json:"confidence"`
	TokensUsed     int               `json:"tokens_used"`
	Deduplicated   bool              `json:"deduplicated"`
	StormDetected  bool              `json:"storm_detected"`
	RemediationReq string            `json:"remediation_request"`
	Summary        string            `json:"summary"`
	Filler         string            `json:"filler,omitempty"`
}

type envelope struct {
	Version     string  `json:"version"`
	Service     string  `json:"service"`
	Operation   string  `json:"operation"`
	Status      string  `json:"status"`
	Attempt     int     `json:"attempt,omitempty"`
	RetryReason string  `json:"retry_reason,omitempty"`
	Payload     payload `json:"payload"`
}

func (g *generator) event(c *correlation, svc *service, ts time.Time, parent *uuid.UUID, last bool) audit.Event {
	r := g.rng
	op := svc.types[zipf(r, len(svc.types))]
	action := op[strings.LastIndexByte(op, '.')+1:]
	outcome := "success"
	switch {
	case action == "failed" || action == "rejected" || action == "timeout" || action == "exceeded":
		outcome = "failure"
	case last && c.failed:
		outcome = "failure"
	default:
		switch x := r.IntN(1000); {
		case x < 60:
			outcome = "failure"
		case x < 120:
			outcome = "pending"
		case x < 123:
			outcome = "unknown"
		}
	}
	severity := "info"
	switch x := r.IntN(10); {
	case outcome == "failure" && x < 6:
		severity = "error"
	case outcome == "failure" && x < 8:
		severity = "warning"
	case outcome == "failure" && x < 9:
		severity = "high"
	case outcome == "failure":
		severity = "critical"
	case outcome == "pending" && x < 5:
		severity = "medium"
	case x == 0:
		severity = "debug"
	case x == 1:
		severity = "low"
	}
	retries := [...]int{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 4, 5}[r.IntN(22)]
	id := g.uuidV7(ts)
	eventType := svc.name + "." + op
	env := envelope{Version: "1.0", Service: svc.name, Operation: op, Status: outcome,
		Payload: payload{
			AlertName: c.alert, Fingerprint: c.fingerprint, Namespace: c.namespace, Cluster: c.cluster,
			Labels:    map[string]string{"app": c.app, "team": c.team, "pod": c.pod, "container": "main"},
			RiskScore: c.riskScore, Retries: retries, Provider: c.provider, Model: c.model,
			WorkflowID: c.workflowID, ExecutionID: c.executionID, Action: actions[r.IntN(len(actions))],
			Confidence: float64(r.IntN(1000)) / 1000, TokensUsed: r.IntN(20_000),
			Deduplicated: r.IntN(10) == 0, StormDetected: r.IntN(50) == 0, RemediationReq: c.id,
			Summary: fmt.Sprintf("%s %s for %s/%s on %s", svc.name, op, c.namespace, c.pod, c.cluster),
		}}
	if retries > 0 {
		env.Attempt, env.RetryReason = retries+1, "transient error from downstream"
	}
	data, _ := json.Marshal(env) // no value of env can fail to encode
	// Pad to 700–900 bytes: the size of a real service's event_data.
	if pad := 700 + r.IntN(201) - len(data); pad > 0 {
		env.Payload.Filler = g.filler(pad)
		data, _ = json.Marshal(env)
	}
	rtype, rid := svc.resourceType, c.id
	switch svc.name {
	case "gateway":
		rid = "fp-" + c.fingerprint
	case "execution":
		rid = c.executionID
	case "workflow":
		rid = c.workflowID
	}
	e := audit.Event{
		EventID: id, Version: "1.0", EventTimestamp: ts.UTC().Truncate(time.Microsecond),
		EventType: eventType, EventCategory: svc.name, EventAction: action, EventOutcome: outcome,
		CorrelationID: c.id, ActorType: "service", ActorID: svc.name,
		ResourceType: &rtype, ResourceID: &rid, ResourceName: &c.pod, ParentEventID: parent,
		TraceID: &c.traceID, Namespace: &c.namespace, ClusterID: &c.cluster, Severity: &severity,
		RetentionDays: retentionOf(svc.name), IsSensitive: r.IntN(50) == 0, EventData: data,
		SubmittedBy: g.principal[svc.name],
	}
	span := g.hex(8)
	e.SpanID = &span
	ip := fmt.Sprintf("10.%d.%d.%d", 10+r.IntN(4), r.IntN(256), 1+r.IntN(254))
	e.ActorIP = &ip
	d := int64(r.IntN(2000))
	e.DurationMS = &d
	if outcome == "failure" {
		code := errorCodes[r.IntN(len(errorCodes))]
		msg := fmt.Sprintf("%s %s failed: %s", svc.name, op, strings.ToLower(strings.ReplaceAll(code, "_", " ")))
		e.ErrorCode, e.ErrorMessage = &code, &msg
	}
	// A few events ask to be kept longer than their category's policy (rounded to a class).
	if e.RetentionDays < 365 && r.IntN(50) == 0 {
		e.RetentionDays = 365
	}
	sum := sha256.Sum256(id[:])
	e.ContentHash = sum[:]
	return e
}

// uuidV7 makes a UUIDv7 for ts (RFC 9562: 48-bit Unix milliseconds, then random bits), as a
// client stamping its own events would.
func (g *generator) uuidV7(ts time.Time) uuid.UUID {
	var u uuid.UUID
	binary.BigEndian.PutUint64(u[8:], g.rng.Uint64())
	binary.BigEndian.PutUint64(u[:8], uint64(ts.UnixMilli())<<16|g.rng.Uint64()&0x0fff)
	u[6] = u[6]&0x0f | 0x70 // version 7
	u[8] = u[8]&0x3f | 0x80 // variant RFC 9562
	return u
}

// hex returns 2n random lowercase hex digits.
func (g *generator) hex(n int) string {
	if cap(g.buf) < n {
		g.buf = make([]byte, n)
	}
	b := g.buf[:n]
	for i := 0; i < n; i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], g.rng.Uint64())
		copy(b[i:], w[:])
	}
	return hex.EncodeToString(b)
}

// filler returns about n bytes of words.
func (g *generator) filler(n int) string {
	var sb strings.Builder
	sb.Grow(n + 16)
	for sb.Len() < n {
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(words[g.rng.IntN(len(words))])
	}
	return sb.String()[:n]
}

// zipf picks an index below n with probability falling off as 1/(i+1): a few values are
// common, the rest rare, as event types, namespaces and workflows are in real audit trails.
func zipf(r *rand.Rand, n int) int {
	h := harmonic(n)
	x := r.Float64() * h
	var acc float64
	for i := range n {
		acc += 1 / float64(i+1)
		if x < acc {
			return i
		}
	}
	return n - 1
}

func harmonic(n int) float64 {
	var h float64
	for i := range n {
		h += 1 / float64(i+1)
	}
	return h
}
