// Package openapi serves auditstore's OpenAPI 3.1 document, which describes the write and query
// APIs (README "Write API" and "Query API"). The document is embedded, so every function
// serves the one it was built with.
package openapi

import (
	"bytes"
	_ "embed"
	"net/http"
	"strconv"
)

//go:embed openapi.yaml
var document []byte

// Path is where Routes serves the document.
const Path = "/api/v1/openapi.yaml"

// Document returns a copy of the embedded OpenAPI document (YAML).
func Document() []byte { return bytes.Clone(document) }

// Routes serves the document at GET /api/v1/openapi.yaml. Like health and /metrics it needs no
// token: it describes the API, it holds no data.
func Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+Path, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Header().Set("Content-Length", strconv.Itoa(len(document)))
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(document)
	})
}
