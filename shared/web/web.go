// Package web serves auditstore's functions: handlers that return errors, RFC 9457
// problem+json as the only error body, health and metrics endpoints, and a server that listens
// on $PORT and shuts down gracefully on SIGTERM.
package web

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// Handler is an HTTP handler that returns its failure instead of writing it; Handle turns the
// error into problem+json in one place.
type Handler func(w http.ResponseWriter, r *http.Request) error

// FieldError names one invalid input field (of one event of a batch when Index is set).
type FieldError struct {
	Index   *int   `json:"index,omitempty"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

// HTTPError is an error with a status and a text that may be shown to the client. Only errors
// made with Error (or Invalid) show their text; any other error is a 500 with a generic body.
type HTTPError struct {
	Status int
	// Detail is shown to the client as the problem's detail.
	Detail string
	// Errors are field errors of a validation failure.
	Errors []FieldError
	// RetryAfter, when set, is sent as Retry-After (seconds).
	RetryAfter time.Duration
	// Err is the cause, logged, never shown.
	Err error
	// Type, when set, is the problem's type URI instead of the status's own (a 404 that means
	// "not sealed yet" rather than "no such event").
	Type string
}

func (e *HTTPError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %v", e.Status, e.Detail, e.Err)
	}
	return fmt.Sprintf("%d %s", e.Status, e.Detail)
}

func (e *HTTPError) Unwrap() error { return e.Err }

// Error returns an error whose status and detail the client sees; err is logged only.
func Error(status int, detail string, err error) error {
	return &HTTPError{Status: status, Detail: detail, Err: err}
}

// Invalid returns a 400 listing every invalid field.
func Invalid(detail string, errs []FieldError) error {
	return &HTTPError{Status: http.StatusBadRequest, Detail: detail, Errors: errs}
}

// Unavailable returns a 503 that tells clients and brokers to retry after the given time.
func Unavailable(detail string, retryAfter time.Duration, err error) error {
	return &HTTPError{Status: http.StatusServiceUnavailable, Detail: detail, RetryAfter: retryAfter, Err: err}
}

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail"`
	Errors []FieldError `json:"errors,omitempty"`
	// FieldErrors are Errors as kubernaut's problem schema reads them (field path → message);
	// WriteProblem fills them in from Errors.
	FieldErrors map[string]string `json:"field_errors,omitempty"`
}

// FieldErrors maps each error's field path to its message: an event of a batch is prefixed
// with its index ("[3].event_type"), and several messages for one path are joined with "; ".
func FieldErrors(errs []FieldError) map[string]string {
	if len(errs) == 0 {
		return nil
	}
	m := make(map[string]string, len(errs))
	for _, e := range errs {
		path := e.Field
		if e.Index != nil {
			path = "[" + strconv.Itoa(*e.Index) + "]." + e.Field
		}
		if prev, ok := m[path]; ok {
			m[path] = prev + "; " + e.Message
		} else {
			m[path] = e.Message
		}
	}
	return m
}

// ProblemType is the type URI of a status's problems.
func ProblemType(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "https://auditstore.dev/problems/invalid-request"
	case http.StatusUnauthorized:
		return "https://auditstore.dev/problems/unauthenticated"
	case http.StatusForbidden:
		return "https://auditstore.dev/problems/forbidden"
	case http.StatusNotFound:
		return "https://auditstore.dev/problems/not-found"
	case http.StatusConflict:
		return "https://auditstore.dev/problems/conflict"
	case http.StatusRequestTimeout:
		return "https://auditstore.dev/problems/request-timeout"
	case http.StatusRequestEntityTooLarge:
		return "https://auditstore.dev/problems/too-large"
	case http.StatusUnsupportedMediaType:
		return "https://auditstore.dev/problems/unsupported-media-type"
	case http.StatusTooManyRequests:
		return "https://auditstore.dev/problems/rate-limited"
	case http.StatusServiceUnavailable:
		return "https://auditstore.dev/problems/unavailable"
	case http.StatusGatewayTimeout:
		return "https://auditstore.dev/problems/timeout"
	}
	return "about:blank"
}

// Handle adapts h to http.Handler, writing any error it returns as problem+json.
func Handle(h Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			WriteError(w, r, err)
		}
	})
}

// WriteError writes err as problem+json: an HTTPError with its status and detail, anything
// else as a 500 whose body says nothing of the cause. The cause is logged.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var he *HTTPError
	if !errors.As(err, &he) {
		he = &HTTPError{Status: http.StatusInternalServerError, Detail: "an internal error occurred; it has been logged", Err: err}
	}
	level := slog.LevelInfo
	if he.Status >= 500 {
		level = slog.LevelError
	}
	// Under RequestLog the cause goes into the request's one log line.
	if !recordError(r.Context(), err) {
		slog.Log(r.Context(), level, "request failed", "method", r.Method, "path", r.URL.Path, "status", he.Status, "error", err)
	}
	if he.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((he.RetryAfter+time.Second-1)/time.Second)))
	}
	WriteProblem(w, Problem{
		Type:   cmp.Or(he.Type, ProblemType(he.Status)),
		Title:  http.StatusText(he.Status),
		Status: he.Status,
		Detail: he.Detail,
		Errors: he.Errors,
	})
}

// WriteProblem writes p as application/problem+json, with field_errors made from its errors.
func WriteProblem(w http.ResponseWriter, p Problem) {
	if p.FieldErrors == nil {
		p.FieldErrors = FieldErrors(p.Errors)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// WriteJSON writes v as a JSON body with the status.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// NotFound answers every unknown path with a problem.
func NotFound(w http.ResponseWriter, r *http.Request) {
	WriteError(w, r, Error(http.StatusNotFound, fmt.Sprintf("no resource at %s %s", r.Method, r.URL.Path), nil))
}

// NotReady is a readiness check's finding about the database a function depends on: State
// names it ("unavailable": it does not answer; "read-only": it answers but takes no writes).
// It is not a reason to leave rotation (readiness says, see readiness): the function keeps
// answering, 503 with Retry-After for what needs the database.
type NotReady struct {
	State string
	Err   error
}

func (e *NotReady) Error() string { return e.State + ": " + e.Err.Error() }

func (e *NotReady) Unwrap() error { return e.Err }

// readiness decides the readiness answer for what the check returned: its status, and the
// database's state for the body (or, when not ready, the detail that says why).
//
// A database that does not answer, or takes no writes, leaves the function ready: out of
// rotation, every caller would get the platform's errors (Knative's activator, a broker's
// connection refused) instead of this function's 503 with Retry-After, and the write-failure
// alert, which counts those 503s, would stay silent. Only a check failing for another reason
// (the process itself cannot serve) takes the instance out.
func readiness(err error) (status int, database string) {
	var nr *NotReady
	switch {
	case err == nil:
		return http.StatusOK, "available"
	case errors.As(err, &nr):
		return http.StatusOK, nr.State
	}
	return http.StatusServiceUnavailable, ""
}

// Health adds /health/liveness (the process serves) and /health/readiness (ready reports no
// error but the database's state, which the body names as "database") to mux, and the same
// checks at /healthz and /readyz, the paths kubernaut's probes and tests ask, answering
// {"status":"healthy"} when up.
func Health(mux *http.ServeMux, ready func(ctx context.Context) error) {
	live := func(status string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			_ = WriteJSON(w, http.StatusOK, map[string]string{"status": status})
		}
	}
	// kubernaut's /readyz answer is {"status":"healthy"} and nothing else.
	readyHandler := func(answer string, withDatabase bool) http.Handler {
		return Handle(func(w http.ResponseWriter, r *http.Request) error {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			err := ready(ctx)
			status, database := readiness(err)
			if status != http.StatusOK {
				return &HTTPError{Status: status, Detail: "not ready: the process cannot serve", RetryAfter: 5 * time.Second, Err: err}
			}
			body := map[string]string{"status": answer}
			if withDatabase {
				body["database"] = database
			}
			return WriteJSON(w, http.StatusOK, body)
		})
	}
	mux.HandleFunc("GET /health/liveness", live("ok"))
	mux.Handle("GET /health/readiness", readyHandler("ready", true))
	mux.HandleFunc("GET /healthz", live("healthy"))
	mux.Handle("GET /readyz", readyHandler("healthy", false))
}
