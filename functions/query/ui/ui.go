// Package ui serves the timeline viewer: a static page for investigators that searches the
// query API from the browser, draws a correlation as one lane per service on a time axis,
// shows an event in full with its integrity status, and exports the result. The assets are
// embedded, so every build serves the page it was tested with.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/auditstore/auditstore/shared/web"
)

//go:embed assets
var assets embed.FS

// Path is where Routes serves the viewer.
const Path = "/ui/"

// ContentSecurityPolicy is sent with every asset. Events are attacker-controlled data: the
// page only ever writes them as text, and the policy makes sure that a mistake there could
// not run anything either: scripts and styles from this origin only, no inline script, no
// eval, no frames, requests to this origin only.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

type asset struct {
	body        []byte
	etag        string
	contentType string
}

var files = load()

func load() map[string]asset {
	out := map[string]asset{}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		out[strings.TrimPrefix(p, "assets/")] = asset{body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, contentType: ct}
		return nil
	})
	if err != nil {
		panic("ui: embedded assets: " + err.Error()) // a build without its assets is broken
	}
	return out
}

// Routes serves the viewer at GET /ui/ (and /ui redirects there). Like the OpenAPI document it
// needs no token: the page holds no data, and it asks for a token when the API wants one.
func Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+Path, serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, Path)
	if name == "" {
		name = "index.html"
	}
	a, ok := files[name]
	if !ok {
		web.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Type", a.contentType)
	// Revalidated every time: a new build must not meet an old app.js in the cache.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
}
