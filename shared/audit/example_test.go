package audit_test

import (
	"errors"
	"fmt"

	"github.com/auditstore/auditstore/shared/audit"
)

func ExampleNewGatewayEvent() {
	in, err := audit.NewGatewayEvent("signal.received").
		WithCorrelationID("rr-2026-001").
		WithSignalType("prometheus").
		WithFingerprint("a1b2c3d4").
		WithAlertName("KubePodCrashLooping", "critical").
		WithRiskScore(40).
		WithResource("Signal", "fp-a1b2c3d4").
		Build()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(*in.EventType, *in.EventOutcome, *in.ActorID)
	fmt.Println(string(in.EventData))
	// Output:
	// gateway.signal.received success gateway
	// {"version":"1.0","service":"gateway","operation":"signal.received","status":"success","payload":{"signal_type":"prometheus","fingerprint":"a1b2c3d4","alert_name":"KubePodCrashLooping","severity":"critical","risk_score":40}}
}

func ExampleNewWorkflowEvent() {
	in, err := audit.NewWorkflowEvent("workflow.completed").
		WithCorrelationID("rr-2026-001").
		WithWorkflowID("workflow-001").
		WithStepResult("success", 5).
		WithOutcome("success").
		Build()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(*in.EventType)
	// Output: workflow.completed
}

// Build names every problem at once; nothing invalid leaves the builder.
func ExampleNewAIAnalysisEvent_invalid() {
	_, err := audit.NewAIAnalysisEvent("analysis.completed").
		WithLLM("anthropic", "").
		WithConfidence(1.7).
		Build()
	var ve *audit.ValidationError
	if errors.As(err, &ve) {
		for _, fe := range ve.Errors {
			fmt.Println(fe.Field+":", fe.Message)
		}
	}
	// Output:
	// correlation_id: is required
	// event_data.payload.confidence: is 1.7; it must be at most 1
	// event_data.payload.model: is required
}

func ExampleNewEvent() {
	// A service without a builder of its own names its payload type.
	type invoice struct {
		Invoice string `json:"invoice"`
	}
	in, err := audit.NewEvent[invoice]("billing", "invoice.sent").
		WithCorrelationID("order-7").
		WithPayload(invoice{Invoice: "INV-7"}).
		Build()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(*in.EventType, *in.ActorID)
	fmt.Println(string(in.EventData))
	// Output:
	// billing.invoice.sent billing
	// {"version":"1.0","service":"billing","operation":"invoice.sent","status":"success","payload":{"invoice":"INV-7"}}
}

func ExampleNewEventData() {
	data, err := audit.NewEventData("billing", "invoice.sent", "success").
		WithPayload(map[string]any{"invoice": "INV-7"}).
		WithRetry(2, "smtp timeout").
		ToJSON()
	fmt.Println(string(data), err)

	back, err := audit.FromJSON(data)
	fmt.Println(back.Service, back.Attempt, err)
	// Output:
	// {"version":"1.0","service":"billing","operation":"invoice.sent","status":"success","attempt":2,"retry_reason":"smtp timeout","payload":{"invoice":"INV-7"}} <nil>
	// billing 2 <nil>
}
