package web

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/auditstore/auditstore/shared/ijson"
)

// MaxQueryParams bounds the parameters of one query string, and MaxQueryValues the values of
// one parameter name. Above either the request is a 400: a filter is never dropped silently
// (Go's own parser gives up past 10,000 parameters, and a handler that ignored its error
// would run without filters).
const (
	MaxQueryParams = 1000
	MaxQueryValues = 100
)

// parsedQueryKey holds a request's query string as ServeListener checked it.
type parsedQueryKey struct{}

// Query parses r's query string, or returns a 400 that says what is wrong with it. Behind
// ServeListener it returns what was parsed when the request was checked.
func Query(r *http.Request) (url.Values, error) {
	if q, ok := r.Context().Value(parsedQueryKey{}).(url.Values); ok {
		return q, nil
	}
	return parseQuery(r)
}

func parseQuery(r *http.Request) (url.Values, error) {
	raw := r.URL.RawQuery
	if n := strings.Count(raw, "&") + 1; raw != "" && n > MaxQueryParams {
		return nil, Invalid("the query string is too long", []FieldError{{Field: "query",
			Message: fmt.Sprintf("has %d parameters; at most %d are accepted", n, MaxQueryParams)}})
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, Invalid("the query string cannot be parsed", []FieldError{{Field: "query", Message: err.Error()}})
	}
	for name, values := range q {
		if len(values) > MaxQueryValues {
			return nil, Invalid("the query string repeats a parameter too often", []FieldError{{Field: name,
				Message: fmt.Sprintf("is given %d times; at most %d values of one parameter are accepted", len(values), MaxQueryValues)}})
		}
	}
	return q, nil
}

// ReadBody reads r's whole body, at most max bytes: 413 beyond (reading no further), 408 when
// the sender is too slow (HTTP_BODY_TIMEOUT), 503 when the server began shutting down while it
// arrived, 400 when it breaks off. The connection is closed after any of these.
func ReadBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	// Made only when needed: formatting it for every request was a visible share of a small
	// write's allocations.
	tooLarge := func(err error) error {
		return Error(http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is larger than %s", byteSize(max)), err)
	}
	if r.ContentLength > max {
		w.Header().Set("Connection", "close")
		return nil, tooLarge(nil)
	}
	var body []byte
	var err error
	if r.ContentLength >= 0 && r.ContentLength <= 1<<20 {
		// The length is known (and the server never reads past it): one buffer of that size,
		// instead of io.ReadAll's growing copies of a 100 KB batch. Beyond 1 MiB the buffer
		// grows with what arrives, so a length alone cannot make the function allocate 5 MiB.
		body = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, body)
	} else {
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	}
	if err == nil {
		return body, nil
	}
	w.Header().Set("Connection", "close")
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, tooLarge(err)
	case errors.Is(err, ErrBodyTimeout):
		return nil, Error(http.StatusRequestTimeout, "the request body did not arrive in time; send it faster or in smaller requests", err)
	case errors.Is(err, ErrShuttingDown):
		return nil, Unavailable("the server is shutting down; nothing was stored, retry", 0, err)
	}
	return nil, Error(http.StatusBadRequest, "the request body could not be read whole", err)
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// CheckJSON checks that body is an I-JSON text nested at most maxDepth deep, in time linear in
// its size (package ijson), and returns a 400 naming every violation otherwise.
func CheckJSON(body []byte, maxDepth int) error {
	errs := ijson.Check(body, ijson.Limits{MaxDepth: maxDepth})
	if len(errs) == 0 {
		return nil
	}
	fes := make([]FieldError, len(errs))
	for i, e := range errs {
		fes[i] = FieldError{Field: cmp.Or(e.Where(), "body"), Message: e.Message}
	}
	return Invalid("the request body is not an acceptable JSON text", fes)
}

// ReadJSON reads a JSON body of at most max bytes (ReadBody) and checks it (CheckJSON, nested
// at most maxDepth deep) before any decoder sees it.
func ReadJSON(w http.ResponseWriter, r *http.Request, max int64, maxDepth int) ([]byte, error) {
	body, err := ReadBody(w, r, max)
	if err != nil {
		return nil, err
	}
	return body, CheckJSON(body, maxDepth)
}
