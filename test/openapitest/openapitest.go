// Package openapitest checks HTTP exchanges against auditstore's OpenAPI document
// (shared/web/openapi), so a handler test fails when the server and the document disagree.
//
// For each exchange it finds the operation by method and path, then checks:
//   - the request, when the server accepted it (status below 400): parameters, Content-Type and
//     body against the document, and no undocumented query parameter. A request the server
//     refused may well be outside the document; that is what a 4xx is for.
//   - the response: the status is documented for the operation, the Content-Type is one the
//     document lists, the body matches its schema, documented headers (Retry-After) are
//     present and valid, and a response documented without content has an empty body.
//   - every 4xx and 5xx: an application/problem+json body matching the Problem schema, whose
//     status member is the response's status (README "Write API").
//
// The document is an OpenAPI 3.1 document; kin-openapi validates it and checks values with its
// JSON Schema 2020-12 validator.
package openapitest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/auditstore/auditstore/shared/web/openapi"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// spec is the loaded document, made once per test binary.
type spec struct {
	doc    *openapi3.T
	router routers.Router
	// schemaOpts assert the string formats kin-openapi leaves unchecked by default and word
	// schema errors as reason and place, not the library's dump of the whole schema.
	schemaOpts []openapi3.SchemaValidationOption
}

var (
	loadOnce sync.Once
	loaded   *spec
	loadErr  error
)

// uuidPattern is the 36-character hyphenated form the server accepts, in either case.
const uuidPattern = `^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`

func load() (*spec, error) {
	loadOnce.Do(func() {
		openapi3filter.RegisterBodyDecoder("application/x-ndjson", decodeNDJSON)
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(openapi.Document())
		if err != nil {
			loadErr = fmt.Errorf("load the OpenAPI document: %w", err)
			return
		}
		doc.SetStringFormatValidators(map[string]openapi3.StringFormatValidator{
			"uuid": openapi3.NewRegexpFormatValidator(uuidPattern),
			"ipv4": openapi3.NewIPValidator(true),
			"ipv6": openapi3.NewIPValidator(false),
		})
		if err := doc.Validate(loader.Context, openapi3.EnableExamplesValidation()); err != nil {
			loadErr = fmt.Errorf("the OpenAPI document is invalid: %w", err)
			return
		}
		router, err := legacy.NewRouter(doc)
		if err != nil {
			loadErr = fmt.Errorf("route the OpenAPI document: %w", err)
			return
		}
		opts := append(doc.GetSchemaValidationOptions(), openapi3.SetSchemaErrorMessageCustomizer(schemaReason))
		loaded = &spec{doc: doc, router: router, schemaOpts: opts}
	})
	return loaded, loadErr
}

// Mismatch is an exchange that does not match the document.
type Mismatch struct {
	Method, Path string
	Status       int
	// Problems says what does not match, one sentence each.
	Problems []string
	// RequestBody and ResponseBody are the exchange's bodies, shortened, to read the failure.
	RequestBody, ResponseBody string
}

func (m *Mismatch) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "openapi: %s %s → %d does not match shared/web/openapi/openapi.yaml:", m.Method, m.Path, m.Status)
	for _, p := range m.Problems {
		b.WriteString("\n  - ")
		b.WriteString(strings.ReplaceAll(p, "\n", "\n    "))
	}
	if m.RequestBody != "" {
		fmt.Fprintf(&b, "\n  request body: %s", m.RequestBody)
	}
	if m.ResponseBody != "" {
		fmt.Fprintf(&b, "\n  response body: %s", m.ResponseBody)
	}
	return b.String()
}

// Validate fails t, naming every mismatch, when the exchange does not match the document.
// reqBody and respBody are the bodies sent and received (the ones in req and resp are read).
func Validate(t testing.TB, req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) {
	t.Helper()
	if err := Check(req, reqBody, resp, respBody); err != nil {
		t.Error(err)
	}
}

// Do sends req with body as its body (req.Body is replaced), reads the response and validates
// the exchange with Validate. It fails t at once when the request cannot be sent.
func Do(t testing.TB, req *http.Request, body []byte) (*http.Response, []byte) {
	t.Helper()
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	req.ContentLength = int64(len(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("openapitest: %s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("openapitest: read the response of %s %s: %v", req.Method, req.URL, err)
	}
	Validate(t, req, body, resp, respBody)
	return resp, respBody
}

// Check returns a *Mismatch naming everything in the exchange that does not match the
// document, or nil.
func Check(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) error {
	s, err := load()
	if err != nil {
		return err
	}
	m := &Mismatch{Method: req.Method, Path: req.URL.Path, Status: resp.StatusCode,
		RequestBody: shorten(reqBody), ResponseBody: shorten(respBody)}
	ctx := context.Background()

	// Route by path and query only: the document has no servers, tests any host.
	target := &url.URL{Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery}
	r, err := http.NewRequestWithContext(ctx, req.Method, target.String(), bytes.NewReader(reqBody))
	if err != nil {
		return fmt.Errorf("openapitest: %w", err)
	}
	r.Header = req.Header.Clone()
	route, pathParams, err := s.router.FindRoute(r)
	if err != nil {
		m.Problems = append(m.Problems, fmt.Sprintf("the document has no operation %s %s (%v)", req.Method, req.URL.Path, err))
		return m
	}
	options := &openapi3filter.Options{
		MultiError:              true,
		IncludeResponseStatus:   true,
		SkipSettingDefaults:     true,
		AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc, // not this checker's business
		SchemaValidationOptions: s.schemaOpts,
	}
	options.WithCustomSchemaErrorFunc(schemaReason)
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: pathParams, Route: route, Options: options}

	if resp.StatusCode < 400 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			m.Problems = append(m.Problems, fmt.Sprintf("the server accepted a request the document refuses: %v", err))
		}
		for name := range req.URL.Query() {
			if p := route.Operation.Parameters.GetByInAndName(openapi3.ParameterInQuery, name); p == nil {
				m.Problems = append(m.Problems, fmt.Sprintf("the server accepted query parameter %q, which the document does not list", name))
			}
		}
	}

	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: options}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		m.Problems = append(m.Problems, responseProblem(err))
	}
	if documented := route.Operation.Responses.Status(resp.StatusCode); documented != nil && documented.Value != nil &&
		len(documented.Value.Content) == 0 && len(respBody) > 0 {
		m.Problems = append(m.Problems, fmt.Sprintf("status %d is documented without a body, but the response has %d bytes", resp.StatusCode, len(respBody)))
	}
	if resp.StatusCode >= 400 {
		m.Problems = append(m.Problems, s.checkProblem(resp, respBody)...)
	}
	if len(m.Problems) > 0 {
		return m
	}
	return nil
}

// checkProblem checks an error response against README "Write API", whatever the operation
// documents: application/problem+json, the Problem schema, status equal to the HTTP status.
func (s *spec) checkProblem(resp *http.Response, body []byte) []string {
	var problems []string
	ct := resp.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/problem+json" {
		problems = append(problems, fmt.Sprintf("an error response must be application/problem+json, not %q", ct))
	}
	if err := s.checkSchema("Problem", body); err != nil {
		problems = append(problems, fmt.Sprintf("the error body is not a Problem: %v", err))
		return problems
	}
	var p struct {
		Status int `json:"status"`
	}
	if err := json.Unmarshal(body, &p); err == nil && p.Status != resp.StatusCode {
		problems = append(problems, fmt.Sprintf("the problem's status is %d, the response's %d", p.Status, resp.StatusCode))
	}
	return problems
}

// CheckSchema returns an error when the JSON value does not match the document's schema of
// that name (components/schemas), e.g. to show that the document refuses what the server
// refuses: CheckSchema("EventInput", body).
func CheckSchema(name string, value []byte) error {
	s, err := load()
	if err != nil {
		return err
	}
	return s.checkSchema(name, value)
}

func (s *spec) checkSchema(name string, value []byte) error {
	ref := s.doc.Components.Schemas[name]
	if ref == nil || ref.Value == nil {
		return fmt.Errorf("the document has no schema %q", name)
	}
	var v any
	if err := json.Unmarshal(value, &v); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	opts := append([]openapi3.SchemaValidationOption{openapi3.EnableJSONSchema2020(), openapi3.MultiErrors()}, s.schemaOpts...)
	if err := ref.Value.VisitJSON(v, opts...); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// schemaReason words a schema error as where and why.
func schemaReason(err *openapi3.SchemaError) string {
	if p := err.JSONPointer(); len(p) > 0 {
		return fmt.Sprintf("at /%s: %s", strings.Join(p, "/"), err.Reason)
	}
	return err.Reason
}

// responseProblem words a ValidateResponse error for a person: which rule, not the library's
// whole input dump.
func responseProblem(err error) string {
	var re *openapi3filter.ResponseError
	if errors.As(err, &re) {
		msg := re.Reason
		if re.Err != nil {
			msg += ": " + re.Err.Error()
		}
		return "response: " + msg
	}
	return "response: " + err.Error()
}

// decodeNDJSON reads newline-delimited JSON as the array of its lines, the way the document
// models a sequential media type (GET /api/v1/audit/export).
func decodeNDJSON(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
	items := []any{}
	for line := 1; sc.Scan(); line++ {
		var v any
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return nil, fmt.Errorf("line %d is not one JSON value: %w", line, err)
		}
		items = append(items, v)
	}
	return items, sc.Err()
}

var space = regexp.MustCompile(`\s+`)

// shorten makes a body fit a failure message.
func shorten(b []byte) string {
	const limit = 600
	if len(b) > 4*limit {
		b = b[:4*limit] // a 5 MiB body need not be collapsed whole to show its start
	}
	s := []rune(space.ReplaceAllString(string(b), " "))
	if len(s) > limit {
		return string(s[:limit]) + "…"
	}
	return string(s)
}
